import { defineConfig } from 'vitest/config';

// The fault and abuse suite (`npm run test:faults`): crashes, restarts, hostile input. Files
// run one at a time, since each drives whole sales with several processes on a small machine.
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    fileParallelism: false,
    // Safety nets against hangs, not speed assertions: tests never assert wall time.
    testTimeout: 300_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
  },
});
