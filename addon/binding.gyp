{
  # A thin node-addon-api wrapper around libbpf. libbpf is the pinned, PIC
  # static library built by scripts/build-libbpf.sh (fetched from a pinned
  # Debian source package and built with -fPIC), so the
  # .node file has no runtime libbpf dependency; libelf and zlib stay shared.
  'targets': [
    {
      'target_name': 'apisix_profile',
      'sources': ['src/addon.cc', 'src/session.cc', 'src/errors.cc'],
      'dependencies': [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except",
      ],
      'include_dirs': ['<(module_root_dir)/../build/libbpf/include'],
      'defines': ['NAPI_VERSION=8', 'NODE_ADDON_API_DISABLE_DEPRECATED'],
      'cflags_cc': ['-Wall', '-Wextra', '-Wno-missing-field-initializers'],
      'libraries': [
        '<(module_root_dir)/../build/libbpf/lib/libbpf.a',
        '-lelf',
        '-lz',
      ],
      # Keep libbpf's symbols private to this shared object.
      'ldflags': ['-Wl,--exclude-libs,ALL'],
    },
  ],
}
