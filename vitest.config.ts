import {existsSync, readdirSync} from 'node:fs'
import {dirname} from 'node:path'
import {defineConfig} from 'vitest/config'

/**
 * The Node 24 leg (`npm run test:node24`): what differs between runtimes, and no more. Node 24
 * has zlib zstd and another OpenSSL, so: the zstd paths (compress, zstd bounds), the crypto
 * paths (age payload, header and scrypt on node:crypto; keys and signatures), the write pipeline
 * read back through every implementation (write.test.ts), one CLI round trip (key generate,
 * backup, list, verify, restore) and the plugin linked into a host CLI. Flags, messages,
 * refusals and the reader's path checks (read.test.ts) are the same code on either runtime: the
 * Node 20 run has them. Every pattern must select at least one file, so a rename cannot shrink
 * the leg silently.
 */
export const NODE24_LEG = [
  'test/unit/lib/archive/compress.test.ts',
  'test/unit/lib/archive/zstd-bounds.test.ts',
  'test/unit/lib/archive/age.test.ts',
  'test/unit/lib/archive/age-header.test.ts',
  'test/unit/lib/archive/age-open.test.ts',
  'test/unit/lib/archive/age-scrypt.test.ts',
  'test/unit/lib/archive/write.test.ts',
  'test/unit/lib/secrets.test.ts',
  'test/unit/lib/repo/authenticity.test.ts',
  'test/integration/round-trip.test.ts',
  'test/integration/host-link.test.ts',
]
/** Files a pattern of NODE24_LEG selects: a path, or `dir/*.test.ts` (fs.globSync needs Node 22). */
const selected = (pattern: string) =>
  pattern.endsWith('/*.test.ts')
    ? readdirSync(dirname(pattern)).filter((name) => name.endsWith('.test.ts'))
    : [pattern].filter((path) => existsSync(path))
for (const pattern of NODE24_LEG) {
  if (selected(pattern).length === 0)
    throw new Error(`the node24 leg's ${pattern} selects no test file: update NODE24_LEG`)
}

/**
 * The projects a plain `vitest run` runs. vitest reads `project` (the CLI's --project, which
 * replaces it) from the config file too, but InlineConfig does not declare it: hence a spread.
 */
const DEFAULT_PROJECTS = {project: ['unit', 'integration']}

export default defineConfig({
  test: {
    hookTimeout: 180_000,
    // Unit and integration files share these workers. Integration suites spend most of their time
    // waiting on child processes (the CLI, mariadbd, npm), so four workers keep two cores busy.
    // Each suite has its own temp dirs, ports and servers; the host CLI install is shared through a
    // lock (test/helpers/host.ts).
    maxWorkers: 4,
    // json: scripts/test-summary.mjs prints the closing 'N passed, N failed' line from it.
    outputFile: {json: '.tmp/vitest.json'},
    pool: 'forks',
    // `vitest run` runs unit and integration; `vitest run --project node24` runs the Node 24 leg alone.
    // Nothing here measures time: speed and scale are the benchmarks' (npm run bench).
    ...DEFAULT_PROJECTS,
    projects: [
      // Test files share their worker's process and module graph (isolate: false): a fresh process
      // and module graph per file cost ~0.4 CPU-s each, a third of the unit project's CPU; for the
      // integration files (src/, @oclif/core, mysql2 and the AWS SDK imported again by each) an
      // integration-only run took 323 CPU-s and 176 s isolated, 290 and 159 s shared. So a test
      // file must leave the process as it found it: none mocks modules or changes the cwd or umask;
      // the environment goes back after each test (unstubEnvs below); a spy goes back after its
      // test; tasks.test.ts puts back the TTY flags listr2 sets; a secret a test registers for
      // redaction is not a short word; servers and child processes a suite starts stop in afterAll.
      {extends: true, test: {include: ['test/unit/**/*.test.ts'], isolate: false, name: 'unit'}},
      {extends: true, test: {include: ['test/integration/**/*.test.ts'], isolate: false, name: 'integration'}},
      {extends: true, test: {include: NODE24_LEG, isolate: false, name: 'node24'}},
    ],
    reporters: [process.env.CI ? 'verbose' : 'default', 'json'],
    testTimeout: 120_000,
    // Tests change the environment with vi.stubEnv only; vitest puts it back before each test.
    unstubEnvs: true,
  },
})
