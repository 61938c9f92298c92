import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Test files already run two at a time; test/backend/wasm-threads.test.ts covers threads.
    env: { HILO_WASM_THREADS: '1' },
  },
});
