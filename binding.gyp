{
  # The QuickJS-NG engine arrives as quickjs.wasm (npm: quickjs-wasi); wasm2c
  # turns it into C in the build directory and it is compiled into the addon.
  # Nothing generated is committed.
  'variables': {
    'qjs_wasm%': '<!(node -p "require.resolve(\'quickjs-wasi/quickjs.wasm\')")',
    'gen_dir': '<(SHARED_INTERMEDIATE_DIR)/nexus',
  },
  'target_defaults': {
    'cflags': ['-O2', '-fPIC'],
    'cflags!': ['-O3'],
    'include_dirs': ['src/wasm_rt', 'src', '<(gen_dir)'],
  },
  'targets': [
    {
      'target_name': 'qjs_wasm',
      'type': 'static_library',
      'actions': [
        {
          'action_name': 'wasm2c',
          'inputs': ['<(qjs_wasm)'],
          # wasm2c writes qjs_wasm.h beside the .c. Declaring one output
          # keeps gyp's make generator from wrapping the action in an
          # intermediate target that reruns it (and recompiles the 8 MB of
          # C) on every build.
          'outputs': ['<(gen_dir)/qjs_wasm.c'],
          'action': ['wasm2c', '<(qjs_wasm)', '-n', 'qjs', '-o', '<(gen_dir)/qjs_wasm.c'],
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
          'inputs': ['src/bootstrap.js', 'scripts/embed.js', 'package-lock.json'],
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
        'src/mpack_pack.c',
        'src/pool.c',
        'src/result.c',
        'src/runtime.c',
        'src/sandbox.c',
        'src/sha256.c',
        'src/snapshot.c',
        'src/state.c',
        'src/lazy.c',
        'src/suspend.c',
        'src/sync.c',
        'src/util.c',
        'src/watchdog.c',
        'src/worker.c',
        'src/wasm_rt/nx_wasm.c',
      ],
      'cflags': ['-std=c11', '-Wall', '-Wextra', '-ftls-model=initial-exec'],
      'defines': ['_GNU_SOURCE'],
      'libraries': ['-lm', '-lpthread'],
    },
  ],
}
