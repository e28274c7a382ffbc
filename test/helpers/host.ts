/**
 * A host oclif CLI installed the way a user's is: its own package.json and its own dependencies
 * from the npm registry (`@oclif/core` and `@oclif/plugin-plugins`, majors pinned), so its
 * `@oclif/core` is another copy than ours. Installed once into `<TEST_CACHE>/host/<key>` (the
 * machine's test cache, build-once.ts; the key names the pinned majors) and reused by later runs
 * and clones; delete that folder to get the newest
 * releases of those majors. One install serves Node 20 and the Node 24 leg: its dependencies are
 * plain JavaScript, and the pinned majors support both (the install is an npm run of its own,
 * about 5 CPU-s, which `npm test` would otherwise pay once per runtime). Each test gives the host its own XDG dirs, where oclif
 * keeps the plugins installed into it, so the cached host itself is never changed.
 *
 * Also: this plugin packed as a user packs it (`npm pack`), and the environment a host or an
 * installed `moctl` runs with.
 */
import {execFile} from 'node:child_process'
import {mkdir, readFile, rename, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {promisify} from 'node:util'

import {buildOnce, exists, TEST_CACHE} from './build-once.js'
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

const CACHE = join(TEST_CACHE, 'host')
const cacheKey = () => [HOST_BIN, ...HOST_DEPENDENCIES.map((d) => d.replaceAll('/', '+'))].join('-')

/**
 * The host's `bin/run.js`, installing the host first if the cache has none. Suites in other
 * workers run at the same time: one installs while the others wait on a lock (a directory, which
 * mkdir creates for exactly one of them, holding the installer's pid), so the registry install
 * runs once per cache key. A lock whose process is gone is taken over. The install goes into a
 * temp dir renamed into place, so a killed install never leaves a half-installed host behind.
 */
export async function installedHost(): Promise<string> {
  const dir = join(CACHE, cacheKey())
  const bin = join(dir, 'bin', 'run.js')
  await mkdir(CACHE, {recursive: true})
  await buildOnce(bin, `${dir}.lock`, () => installHost(dir))
  return bin
}

async function installHost(dir: string): Promise<void> {
  const {cleanup, path: staging} = await tempDir('.installing-', CACHE)
  try {
    await mkdir(join(staging, 'bin'))
    await writeFile(join(staging, 'package.json'), `${JSON.stringify(HOST_PACKAGE, null, 2)}\n`)
    await writeFile(join(staging, 'bin', 'run.js'), HOST_RUN, {mode: 0o755})
    await npm(['install', '--no-audit', '--no-fund', '--loglevel=error', ...HOST_DEPENDENCIES], staging)
    await rename(staging, dir)
  } finally {
    await cleanup()
  }
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

/**
 * The environment that lets an install of this plugin take zstd-napi's native binding from this
 * checkout instead of compiling it again (about a minute of CPU per install): zstd-napi installs
 * with `prebuild-install || node-gyp rebuild`, and prebuild-install looks in the folder named by
 * `npm_config_zstd_napi_local_prebuilds` before it tries the network (unreachable here). The
 * binding is the one `npm ci` built from the same source; that build is what proves the native
 * path compiles. Empty when this checkout has no binding (zstd-napi is optional).
 */
export async function localZstdPrebuild(dir: string): Promise<NodeJS.ProcessEnv> {
  const pkg = join(ROOT, 'node_modules', 'zstd-napi')
  if (!(await exists(join(pkg, 'build', 'Release', 'binding.node')))) return {}
  const {binary, version} = JSON.parse(await readFile(join(pkg, 'package.json'), 'utf8')) as {
    binary: {napi_versions: number[]}
    version: string
  }
  // prebuild-install's default name: {name}-v{version}-napi-v{napi}-{platform}-{arch}.tar.gz
  const name = `zstd-napi-v${version}-napi-v${Math.max(...binary.napi_versions)}-${process.platform}-${process.arch}.tar.gz`
  await mkdir(dir, {recursive: true})
  await run('tar', ['-czf', join(dir, name), '-C', pkg, 'build/Release/binding.node'])
  // prebuild-install's name for it: npm_config_ and the package name with _ for -.
  return {[`npm_config_${'zstd-napi'.replace('-', '_')}_local_prebuilds`]: dir}
}

/**
 * What the tests' npm installs run with: the registry's metadata from npm's cache when it is there
 * (--prefer-offline) instead of asking the registry again for each of the ~170 packages an
 * install of this plugin resolves; a cold cache still fetches. An install of the tarball measured
 * 18.7 CPU-s without it, 13.5 with it. No audit request and no funding message (--no-audit
 * --no-fund): what they report is npm's, not the install's. plugin-plugins' own npm reads these
 * from the environment.
 */
/* eslint-disable camelcase -- npm's own names for them */
export const NPM_ENV: NodeJS.ProcessEnv = {
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_prefer_offline: 'true',
}
/* eslint-enable camelcase */

/** Runs npm (the one on PATH, as a user would; NPM_ENV), rejecting with its stderr on failure. */
export async function npm(
  args: string[],
  cwd: string,
  timeoutMs = 300_000,
  env: NodeJS.ProcessEnv = {},
): Promise<{stderr: string; stdout: string}> {
  try {
    return await run('npm', args, {cwd, env: {...process.env, ...NPM_ENV, ...env}, timeout: timeoutMs})
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
