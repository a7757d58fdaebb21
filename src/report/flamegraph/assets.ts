// The CSS and JavaScript embedded in every flame graph SVG. Kept apart from
// the renderer so each can be read on its own. Both are inserted inside
// CDATA sections, so neither may contain the sequence "]]>".
//
// The script reads everything it needs from the document:
//   <g id="frames" data-x0 data-span data-cw>  left edge and width of the
//       root frame in pixels, and the width of one label character;
//   <g class="f" data-x data-w data-d>  a frame's offset and width in
//       samples, and its depth (0 = root);
//   its <title> "name (N samples, P%)", from which the name is recovered.
// Zooming keeps the clicked frame's subtree, stretched to the full width;
// its ancestors span the width, faded; all other frames are hidden.

export const FLAMEGRAPH_CSS = `
.f { cursor: pointer; }
.f:hover rect { stroke: #222; stroke-width: 0.6; }
.f text { pointer-events: none; fill: #000; }
.faded { opacity: 0.55; }
#reset { cursor: pointer; fill: #0645ad; }
#status { fill: #333; }
`;

export const FLAMEGRAPH_SCRIPT = `
(function () {
  'use strict';
  var box = document.getElementById('frames');
  if (!box) return;
  var reset = document.getElementById('reset');
  var status = document.getElementById('status');
  var hint = status ? status.textContent : '';
  var x0 = Number(box.getAttribute('data-x0'));
  var span = Number(box.getAttribute('data-span'));
  var cw = Number(box.getAttribute('data-cw'));
  var frames = [];
  var gs = box.getElementsByTagName('g');
  for (var i = 0; i < gs.length; i++) {
    var info = gs[i].getElementsByTagName('title')[0].textContent;
    frames.push({
      g: gs[i],
      rect: gs[i].getElementsByTagName('rect')[0],
      text: gs[i].getElementsByTagName('text')[0],
      x: Number(gs[i].getAttribute('data-x')),
      w: Number(gs[i].getAttribute('data-w')),
      d: Number(gs[i].getAttribute('data-d')),
      name: info.slice(0, info.lastIndexOf(' (')),
      info: info
    });
  }
  function px(v) { return String(Math.round(v * 100) / 100); }
  function fit(name, width) {
    if (!(cw > 0)) return '';
    var room = Math.floor((width - 6) / cw + 1e-9);
    if (room < 3) return '';
    var chars = Array.from(name);
    return chars.length <= room ? name : chars.slice(0, room - 2).join('') + '..';
  }
  function place(f, left, width) {
    f.rect.setAttribute('x', px(x0 + left));
    f.rect.setAttribute('width', px(width));
    f.text.setAttribute('x', px(x0 + left + 3));
    f.text.textContent = fit(f.name, width);
  }
  function frameOf(node) {
    while (node && node !== box) {
      for (var i = 0; i < frames.length; i++) if (frames[i].g === node) return frames[i];
      node = node.parentNode;
    }
    return null;
  }
  function zoom(z) {
    var scale = span / z.w;
    for (var i = 0; i < frames.length; i++) {
      var f = frames[i];
      if (f.d >= z.d && f.x >= z.x && f.x + f.w <= z.x + z.w) {
        f.g.removeAttribute('display');
        f.g.setAttribute('class', 'f');
        place(f, (f.x - z.x) * scale, f.w * scale);
      } else if (f.d < z.d && f.x <= z.x && f.x + f.w >= z.x + z.w) {
        f.g.removeAttribute('display');
        f.g.setAttribute('class', 'f faded');
        place(f, 0, span);
      } else {
        f.g.setAttribute('display', 'none');
      }
    }
    if (reset) {
      if (z.d === 0) reset.setAttribute('display', 'none');
      else reset.removeAttribute('display');
    }
  }
  box.addEventListener('click', function (e) {
    var f = frameOf(e.target);
    if (f) zoom(f);
  });
  box.addEventListener('mouseover', function (e) {
    var f = frameOf(e.target);
    if (f && status) status.textContent = f.info;
  });
  box.addEventListener('mouseout', function () {
    if (status) status.textContent = hint;
  });
  if (reset && frames.length) {
    reset.addEventListener('click', function () { zoom(frames[0]); });
  }
})();
`;
