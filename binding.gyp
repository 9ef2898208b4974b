{
  # The QuickJS-NG engine arrives as quickjs.wasm (npm: quickjs-wasi); wasm2c
  # turns it into C in the build directory and it is compiled into the addon.
  # The published package ships that C in gen/ (npm pack makes it), so a
  # build from it needs no wasm2c: scripts/engine-c.js checks and copies it.
  # Nothing generated is committed.
  'variables': {
    'qjs_wasm%': '<!(node -p "require.resolve(\'quickjs-wasi/quickjs.wasm\')")',
    'qjs_pkg%': '<!(node -p "require.resolve(\'quickjs-wasi/package.json\')")',
    'gen_dir': '<(SHARED_INTERMEDIATE_DIR)/nexus',
  },
  'target_defaults': {
    'cflags': ['-O2', '-fPIC'],
    'cflags!': ['-O3'],
    # <(gen_dir)/wabt last: the wasm-rt.h there is reached only through
    # src/wasm_rt/wasm-rt.h's #include_next.
    'include_dirs': ['src/wasm_rt', 'src', '<(gen_dir)', '<(gen_dir)/wabt'],
  },
  'targets': [
    {
      'target_name': 'qjs_wasm',
      'type': 'static_library',
      'actions': [
        {
          'action_name': 'engine_c',
          'inputs': ['<(qjs_wasm)', 'scripts/engine-c.js'],
          # engine-c.js also writes qjs_wasm.h and wabt/wasm-rt.h. Declaring
          # one output keeps gyp's make generator from wrapping the action
          # in an intermediate target that reruns it (and recompiles the
          # 8 MB of C) on every build.
          'outputs': ['<(gen_dir)/qjs_wasm.c'],
          'action': ['node', 'scripts/engine-c.js', '<(qjs_wasm)', '<(gen_dir)'],
        },
      ],
      'sources': ['<(gen_dir)/qjs_wasm.c'],
      # Generated code: its warnings are wasm2c's, not ours.
      'cflags': ['-w', '-ftls-model=initial-exec'],
      'direct_dependent_settings': {'include_dirs': ['<(gen_dir)']},
    },
    {
      'target_name': 'nexus_wasm_bridge',
      'dependencies': ['qjs_wasm'],
      'actions': [
        {
          'action_name': 'embed_bootstrap',
          'inputs': ['src/bootstrap.js', 'scripts/embed.js', '<(qjs_pkg)'],
          'outputs': ['<(gen_dir)/bootstrap_js.h'],
          'action': ['node', 'scripts/embed.js', 'src/bootstrap.js', 'nx_bootstrap_js', '<(gen_dir)/bootstrap_js.h'],
        },
        {
          # The C view of the one table lib/ reads too.
          'action_name': 'contract',
          'inputs': ['src/contract.js', 'scripts/contract.js'],
          'outputs': ['<(gen_dir)/contract.h'],
          'action': ['node', 'scripts/contract.js', '<(gen_dir)/contract.h'],
        },
      ],
      'sources': [
        'src/addon.c',
        'src/args.c',
        'src/blob.c',
        'src/buf.c',
        'src/cache.c',
        'src/cache_disk.c',
        'src/caps.c',
        'src/compiler.c',
        'src/config.c',
        'src/engine.c',
        'src/errors.c',
        'src/failure.c',
        'src/hostcalls.c',
        'src/imports.c',
        'src/loader.c',
        'src/mem.c',
        'src/metrics.c',
        'src/mpack.c',
        'src/mpack_decode.c',
        'src/mpack_encode.c',
        'src/pool.c',
        'src/result.c',
        'src/runtime.c',
        'src/sandbox.c',
        'src/sha256.c',
        'src/snapshot.c',
        'src/state.c',
        'src/suspend.c',
        'src/util.c',
        'src/watchdog.c',
        'src/worker.c',
        'src/wasm_rt/nx_wasm.c',
      ],
      'cflags': ['-std=c11', '-Wall', '-Wextra', '-ftls-model=initial-exec'],
      'defines': ['_GNU_SOURCE'],
      # msgpack-c statically when it can be (scripts/msgpack.js).
      'libraries': ['<!@(node scripts/msgpack.js)', '-lm', '-lpthread'],
    },
  ],
}
