/**
 * A host oclif CLI installed the way a user's is: its own package.json and its own dependencies
 * from the npm registry (`@oclif/core` and `@oclif/plugin-plugins`, majors pinned), so its
 * `@oclif/core` is another copy than ours. Installed once into `.tmp/host-cache/<key>` (the key
 * names the pinned majors and Node's major) and reused by later runs; delete that folder to get
 * the newest releases of those majors. Each test gives the host its own XDG dirs, where oclif
 * keeps the plugins installed into it, so the cached host itself is never changed.
 *
 * Also: this plugin packed as a user packs it (`npm pack`), and the environment a host or an
 * installed `moctl` runs with.
 */
import {execFile} from 'node:child_process'
import {access, mkdir, rename, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {promisify} from 'node:util'

import {ROOT, tempDir} from './cli.js'

const run = promisify(execFile)

/** What `npm install` is given for the host: the majors that support Node 20 (shared/LIBRARIES.md). */
export const HOST_DEPENDENCIES = ['@oclif/core@4', '@oclif/plugin-plugins@5']
export const HOST_BIN = 'opsctl'

const HOST_PACKAGE = {
  name: HOST_BIN,
  oclif: {bin: HOST_BIN, dirname: 'opsctl-test', plugins: ['@oclif/plugin-plugins'], topicSeparator: ' '},
  private: true,
  type: 'module',
  version: '1.0.0',
}
const HOST_RUN = "#!/usr/bin/env node\nimport {execute} from '@oclif/core'\n\nawait execute({dir: import.meta.url})\n"

const CACHE = join(ROOT, '.tmp', 'host-cache')
const cacheKey = () =>
  [
    HOST_BIN,
    ...HOST_DEPENDENCIES.map((d) => d.replaceAll('/', '+')),
    `node${process.versions.node.split('.')[0]}`,
  ].join('-')

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  )

/**
 * The host's `bin/run.js`, installing the host first if the cache has none. Concurrent callers
 * (suites in other workers) may both install; each installs into its own temp dir and renames it
 * into place, and the loser of that race uses the winner's.
 */
export async function installedHost(): Promise<string> {
  const dir = join(CACHE, cacheKey())
  const bin = join(dir, 'bin', 'run.js')
  if (await exists(bin)) return bin
  await mkdir(CACHE, {recursive: true})
  const {cleanup, path: staging} = await tempDir('.installing-', CACHE)
  try {
    await mkdir(join(staging, 'bin'))
    await writeFile(join(staging, 'package.json'), `${JSON.stringify(HOST_PACKAGE, null, 2)}\n`)
    await writeFile(join(staging, 'bin', 'run.js'), HOST_RUN, {mode: 0o755})
    await npm(['install', '--no-audit', '--no-fund', '--loglevel=error', ...HOST_DEPENDENCIES], staging)
    await rename(staging, dir).catch(async (error: NodeJS.ErrnoException) => {
      if (!(await exists(bin))) throw error
    })
  } finally {
    await cleanup()
  }

  return bin
}

/**
 * This plugin as `npm pack` makes it, into `dest`; returns the tarball's absolute path. Packed
 * with --ignore-scripts: `prepack` would rebuild dist/ under the other suites running meanwhile
 * (`npm test` has built it already), and `postpack` would delete oclif.manifest.json.
 */
export async function packPlugin(dest: string): Promise<string> {
  for (const built of ['dist/index.js', 'oclif.manifest.json']) {
    if (!(await exists(join(ROOT, built)))) throw new Error(`${built} is missing: run \`npm run build\` first`)
  }

  const {stdout} = await npm(['pack', '--ignore-scripts', '--json', '--pack-destination', dest], ROOT)
  const [{filename}] = JSON.parse(stdout) as Array<{filename: string}>
  return join(dest, filename)
}

/** Runs npm (the one on PATH, as a user would), rejecting with its stderr on failure. */
export async function npm(args: string[], cwd: string, timeoutMs = 300_000): Promise<{stderr: string; stdout: string}> {
  try {
    return await run('npm', args, {cwd, timeout: timeoutMs})
  } catch (error) {
    const {stderr, stdout} = error as {stderr?: string; stdout?: string}
    throw new Error(`npm ${args.join(' ')} failed in ${cwd}:\n${stderr ?? ''}${stdout ?? ''}`)
  }
}

/**
 * The environment of a user's shell for one host (or one installed moctl) under `dir`: its own XDG
 * dirs, where oclif keeps the plugins installed into it, its cache and config; and no NODE_ENV.
 * vitest sets NODE_ENV=test, and under it oclif is not in production mode: it skips the checks
 * (such as the linked-ESM warning) that a user's run makes.
 */
export function userEnv(dir: string): NodeJS.ProcessEnv {
  return {
    NODE_ENV: undefined,
    XDG_CACHE_HOME: join(dir, 'xdg-cache'),
    XDG_CONFIG_HOME: join(dir, 'xdg-config'),
    XDG_DATA_HOME: join(dir, 'xdg-data'),
  }
}

/**
 * stderr as two runs of the same error can be compared: without the timestamped step lines a
 * log gets ("2026-…Z Check backup: failed after 2ms"), whose times differ from run to run.
 */
export function withoutStepLines(stderr: string): string {
  return stderr
    .split('\n')
    .filter((line) => !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ /.test(line))
    .join('\n')
}
