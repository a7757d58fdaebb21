// The CSS and JavaScript embedded in every flame graph SVG. Kept apart from
// the renderer so each can be read on its own. Both are inserted inside
// CDATA sections, so neither may contain the sequence "]]>".
//
// The script reads everything it needs from the document:
//   <g id="frames" data-x0 data-span data-cw [data-unit]>  left edge and width of the
//       root frame in pixels, the width of one label character, and what a
//       count is (default samples; off-CPU profiles: µs);
//   <g class="f" data-x data-w data-d>  a frame's offset and width in
//       samples, and its depth (0 = root); frames come in depth-first
//       pre-order, root first, so offsets never decrease;
//   its <title> "name (details)", from which the name is recovered;
//   the controls #reset, #search, #matched and #status (each optional).
//
// Zooming keeps the clicked frame's subtree, stretched to the full width;
// its ancestors span the width, faded; all other frames are hidden.
// Searching marks frames whose name matches a regular expression (any case
// when the text is all lower case; a literal match when it is not a valid
// expression) and shows what share of all samples lies under a match,
// counting nested matches once. Zoom and search live in the URL fragment
// (`#zoom=<depth>,<offset>&search=<text>`), so a reload or a shared link
// shows the same view, and Back/Forward step through earlier views.

export const FLAMEGRAPH_CSS = `
.f { cursor: pointer; }
.f:hover rect { stroke: #222; stroke-width: 0.6; }
.f text { pointer-events: none; fill: #000; }
.faded { opacity: 0.55; }
.f.match rect { fill: #e23ce2; }
#reset, #search { cursor: pointer; fill: #0645ad; }
#reset:hover, #search:hover { text-decoration: underline; }
#status, #matched { fill: #333; }
`;

export const FLAMEGRAPH_SCRIPT = `
(function () {
  'use strict';
  var win = typeof window === 'undefined' ? null : window;
  var box = document.getElementById('frames');
  if (!box) return;
  var resetButton = document.getElementById('reset');
  var searchButton = document.getElementById('search');
  var matched = document.getElementById('matched');
  var status = document.getElementById('status');
  var hint = status ? status.textContent : '';
  var x0 = Number(box.getAttribute('data-x0'));
  var span = Number(box.getAttribute('data-span'));
  var cw = Number(box.getAttribute('data-cw'));
  var unit = box.getAttribute('data-unit') || 'samples';
  var frames = [];
  var gs = box.getElementsByTagName('g');
  for (var i = 0; i < gs.length; i++) {
    var info = gs[i].getElementsByTagName('title')[0].textContent;
    var frame = {
      g: gs[i],
      rect: gs[i].getElementsByTagName('rect')[0],
      text: gs[i].getElementsByTagName('text')[0],
      x: Number(gs[i].getAttribute('data-x')),
      w: Number(gs[i].getAttribute('data-w')),
      d: Number(gs[i].getAttribute('data-d')),
      name: info.slice(0, info.lastIndexOf(' (')),
      info: info,
      faded: false,
      hit: false
    };
    gs[i].flameFrame = frame;
    frames.push(frame);
  }
  if (!frames.length) return;
  var root = frames[0];
  var zoomed = root;
  var term = '';

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
  function paint(f) {
    f.g.setAttribute('class', 'f' + (f.faded ? ' faded' : '') + (f.hit ? ' match' : ''));
  }
  function frameOf(node) {
    while (node && node !== box) {
      if (node.flameFrame) return node.flameFrame;
      node = node.parentNode;
    }
    return null;
  }

  function showZoom(z) {
    zoomed = z;
    var scale = span / z.w;
    for (var i = 0; i < frames.length; i++) {
      var f = frames[i];
      if (f.d >= z.d && f.x >= z.x && f.x + f.w <= z.x + z.w) {
        f.g.removeAttribute('display');
        f.faded = false;
        place(f, (f.x - z.x) * scale, f.w * scale);
      } else if (f.d < z.d && f.x <= z.x && f.x + f.w >= z.x + z.w) {
        f.g.removeAttribute('display');
        f.faded = true;
        place(f, 0, span);
      } else {
        f.g.setAttribute('display', 'none');
        f.faded = false;
      }
      paint(f);
    }
    if (resetButton) {
      if (z === root) resetButton.setAttribute('display', 'none');
      else resetButton.removeAttribute('display');
    }
  }

  function pattern(text) {
    var flags = text.toLowerCase() === text ? 'i' : '';
    try {
      return new RegExp(text, flags);
    } catch (e) {
      return new RegExp(text.replace(/[.*+?^$\\{\\}()|[\\]\\\\]/g, '\\\\$&'), flags);
    }
  }
  function showSearch(text) {
    term = text;
    var re = text ? pattern(text) : null;
    var covered = 0;
    var end = -1;
    for (var i = 0; i < frames.length; i++) {
      var f = frames[i];
      f.hit = re !== null && re.test(f.name);
      paint(f);
      // Pre-order: offsets never decrease and a nested match lies inside
      // the one before it, so a running end counts every sample once.
      if (f.hit && f.x + f.w > end) {
        covered += f.x + f.w - Math.max(f.x, end);
        end = f.x + f.w;
      }
    }
    if (matched) {
      matched.textContent = text
        ? 'Matched: ' + (covered * 100 / root.w).toFixed(2) + '% (' + covered + ' of ' + root.w + ' ' + unit + ')'
        : '';
    }
    if (searchButton) searchButton.textContent = text ? 'Reset search' : 'Search';
  }

  function fragment() {
    var parts = [];
    if (zoomed !== root) parts.push('zoom=' + zoomed.d + ',' + zoomed.x);
    if (term) parts.push('search=' + encodeURIComponent(term));
    return parts.length ? '#' + parts.join('&') : '';
  }
  function save() {
    if (!win || !win.location || !win.history) return;
    var next = fragment();
    if (next === win.location.hash) return;
    try {
      win.history.pushState(null, '', next || win.location.href.split('#')[0]);
    } catch (e) {
      // Documents that may not change their URL keep the view unsaved.
    }
  }
  function restore() {
    var hash = win && win.location ? win.location.hash.replace(/^#/, '') : '';
    var z = root;
    var text = '';
    var parts = hash ? hash.split('&') : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf('=');
      var key = eq < 0 ? parts[i] : parts[i].slice(0, eq);
      var value = eq < 0 ? '' : parts[i].slice(eq + 1);
      var at = /^(\\d+),(\\d+)$/.exec(value);
      if (key === 'zoom' && at) {
        for (var j = 0; j < frames.length; j++) {
          if (frames[j].d === Number(at[1]) && frames[j].x === Number(at[2])) z = frames[j];
        }
      } else if (key === 'search') {
        try { text = decodeURIComponent(value); } catch (e) { text = ''; }
      }
    }
    if (z !== zoomed) showZoom(z);
    if (text !== term) showSearch(text);
  }

  function askSearch() {
    if (!win || !win.prompt) return;
    var text = win.prompt('Search frames (a regular expression; all lower case matches any case):', term);
    if (text === null || text === undefined) return;
    showSearch(String(text));
    save();
  }

  box.addEventListener('click', function (e) {
    var f = frameOf(e.target);
    if (!f) return;
    showZoom(f);
    save();
  });
  box.addEventListener('mouseover', function (e) {
    var f = frameOf(e.target);
    if (f && status) status.textContent = f.info;
  });
  box.addEventListener('mouseout', function () {
    if (status) status.textContent = hint;
  });
  if (resetButton) {
    resetButton.addEventListener('click', function () {
      showZoom(root);
      save();
    });
  }
  if (searchButton) {
    searchButton.addEventListener('click', function () {
      if (term) {
        showSearch('');
        save();
      } else {
        askSearch();
      }
    });
  }
  if (document.addEventListener) {
    document.addEventListener('keydown', function (e) {
      if (e.key === '/' || ((e.ctrlKey || e.metaKey) && (e.key === 'f' || e.key === 'F'))) {
        if (e.preventDefault) e.preventDefault();
        askSearch();
      } else if (e.key === 'Escape' && term) {
        showSearch('');
        save();
      }
    });
  }
  if (win && win.addEventListener) win.addEventListener('popstate', restore);
  restore();
})();
`;
