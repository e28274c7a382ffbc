import {defineConfig} from 'vitest/config'

export default defineConfig({
  test: {
    hookTimeout: 180_000,
    include: ['test/**/*.test.ts'],
    // json: scripts/test-summary.mjs prints the closing 'N passed, N failed' line from it.
    outputFile: {json: '.tmp/vitest.json'},
    pool: 'forks',
    reporters: [process.env.CI ? 'verbose' : 'default', 'json'],
    // Integration suites start their own mariadbd and CLI processes: give them room, and keep
    // the suites in separate workers so one server's stop never races another suite's.
    testTimeout: 120_000,
    // Tests change the environment with vi.stubEnv only; vitest puts it back before each test.
    unstubEnvs: true,
  },
})
