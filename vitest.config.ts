import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Test files already run two at a time; test/backend/wasm-threads.test.ts covers threads and
    // test/train/replicas.test.ts data-parallel replicas (runs that set train.data_parallel, and
    // the quickstart's, which clears this as the README's command has it, still start them).
    // HILO_PROBE_CACHE off: tests never read or write the user's probe cache (test/probe/cache.test.ts sets its own).
    env: { HILO_WASM_THREADS: '1', HILO_DATA_PARALLEL: '1', HILO_PROBE_CACHE: 'off' },
  },
});
