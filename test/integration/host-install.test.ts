/**
 * The plugin installed the ways the README's Install section says, from the tarball `npm pack`
 * makes: into a host oclif CLI that has its own dependencies from the npm registry
 * (test/helpers/host.ts) with `<host> plugins install file:/abs/path.tgz`, and on its own with
 * `npm install -g ./x.tgz` (into a temp prefix). Both installs fetch our dependencies from the
 * registry, as a user's do; they run side by side, once per run of this file.
 *
 * In the host, an error must print exactly what standalone `moctl` prints (the host has its own
 * `@oclif/core`, whose error handler does not know our ExitError), and our service hooks must
 * stop and start a real server around a backup. The host gets no second @oclif/plugin-plugins (an
 * optional peer dependency of ours, with its npm about 19 MB): the host has its own. The global
 * install, with plugin-plugins beside it as the README says, keeps `help` and `plugins`.
 */
import {createHash} from 'node:crypto'
import {readdir, readFile} from 'node:fs/promises'
import {createRequire} from 'node:module'
import {basename, dirname, join} from 'node:path'
import {stripVTControlCharacters} from 'node:util'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {backupArgs, mariadbService, NO_SQL} from '../helpers/args.js'
import {type CliResult, ROOT, runCli, runInProcess, tempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'
import {
  HOST_BIN,
  installedHost,
  localZstdPrebuild,
  npm,
  NPM_ENV,
  packPlugin,
  userEnv,
  withoutStepLines,
} from '../helpers/host.js'
import {mariadbAvailable, skipReason, startMariadb, type TestServer} from '../helpers/mariadb.js'

// Each install fetches our dependencies from the registry (the npm cache, once warm). zstd-napi's
// binding comes from this checkout (localZstdPrebuild): compiling it, about a minute of CPU, is
// what `npm ci` here has just proved works, and each install would only repeat it.
const INSTALL_TIMEOUT = 480_000

let tmp: {cleanup: () => Promise<void>; path: string}
let hostBin: string
let hostEnv: NodeJS.ProcessEnv
let globalBin: string
let globalEnv: NodeJS.ProcessEnv
let standaloneEnv: NodeJS.ProcessEnv

const host = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(args, {bin: hostBin, env: {...hostEnv, ...env}})
const installed = (args: string[]) => runCli(args, {bin: globalBin, env: globalEnv})
/** The dev checkout's commands (in process: runInProcess gives what bin/run.js prints), the reference for what an error prints. */
const standalone = (args: string[]) => runInProcess(args, {env: standaloneEnv})
/** `plugins inspect` of our plugin in the host, run once: several tests read it. */
let inspected: CliResult

beforeAll(async () => {
  tmp = await tempDir('moctl-br-install-')
  hostEnv = userEnv(join(tmp.path, 'host-user'))
  globalEnv = userEnv(join(tmp.path, 'global-user'))
  standaloneEnv = userEnv(join(tmp.path, 'standalone-user'))
  const [bin, tarball, prebuilt] = await Promise.all([
    installedHost(),
    packPlugin(tmp.path),
    localZstdPrebuild(join(tmp.path, 'prebuilds')),
  ])
  hostBin = bin
  const prefix = join(tmp.path, 'global')
  const timed = async <T>(what: string, work: Promise<T>): Promise<T> => {
    const started = Date.now()
    const result = await work
    process.stderr.write(`host-install: ${what} took ${((Date.now() - started) / 1000).toFixed(1)} s\n`)
    return result
  }

  const [plugin] = await Promise.all([
    // An absolute path with the file: prefix: a bare path is read as a GitHub shorthand.
    timed(
      'plugins install file:',
      runCli(['plugins', 'install', `file:${tarball}`], {
        bin: hostBin,
        env: {...hostEnv, ...NPM_ENV, ...prebuilt},
        timeoutMs: INSTALL_TIMEOUT,
      }),
    ),
    // The README's command, in the tarball's directory, with a prefix instead of the system's:
    // plugin-plugins is an optional peer dependency, installed beside moctl for `moctl plugins`.
    timed(
      'npm install -g',
      npm(
        ['install', '-g', '--prefix', prefix, `./${basename(tarball)}`, '@oclif/plugin-plugins@5'],
        dirname(tarball),
        INSTALL_TIMEOUT,
        prebuilt,
      ),
    ),
  ])
  expect(plugin.code, plugin.stderr).toBe(0)
  globalBin = join(prefix, 'bin', 'moctl')
  inspected = await host(['plugins', 'inspect', '@moctl/plugin-br', '--json'])
}, 600_000)

afterAll(async () => {
  await tmp?.cleanup()
})

/** A file's SHA-256: a binary compared by hash, as toEqual walks a buffer byte by byte (a minute for a binding on a busy machine). */
const fileHash = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex')

/** The folders under `nodeModules`, at any depth, of the packages with these names. */
async function packagesNamed(nodeModules: string, names: string[]): Promise<string[]> {
  const found: string[] = []
  const visit = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, {withFileTypes: true}).catch(() => [])
    for (const entry of entries) {
      if (!entry.isDirectory()) continue
      const path = join(dir, entry.name)
      if (entry.name.startsWith('@')) {
        for (const scoped of await readdir(path, {withFileTypes: true})) {
          if (scoped.isDirectory()) await visitPackage(join(path, scoped.name), `${entry.name}/${scoped.name}`)
        }
      } else if (!entry.name.startsWith('.')) await visitPackage(path, entry.name)
    }
  }

  const visitPackage = async (path: string, name: string) => {
    if (names.includes(name)) found.push(path)
    await visit(join(path, 'node_modules'))
  }

  await visit(nodeModules)
  return found
}

/** oclif wraps its usage text at the terminal width, and `opsctl` is one character longer than `moctl`. */
const flat = (text: string) => text.replaceAll(/\s+/g, ' ')

/** stderr must be standalone's, with the host's bin in the hints, and end on the Error and Hint lines. */
function expectSameError(actual: CliResult, reference: CliResult, bin: string, tail: string[]) {
  expect(actual.code).toBe(reference.code)
  expect(withoutStepLines(actual.stderr)).toBe(withoutStepLines(reference.stderr).replaceAll('moctl br ', `${bin} br `))
  expect(actual.stderr.trimEnd().split('\n').slice(-tail.length)).toEqual(tail)
  expect(actual.stderr).not.toMatch(/EEXIT|linked ESM|Warning/)
}

describe(`installed into a host with plugins install file:… (${HOST_BIN}, its own @oclif/core)`, () => {
  it('is listed as an installed plugin, not a link, and brings no child plugins', async () => {
    const plugins = await host(['plugins'])
    expect(plugins.code, plugins.stderr).toBe(0)
    expect(stripVTControlCharacters(plugins.stdout)).toMatch(/^@moctl\/plugin-br 0\.1\.0$/m)
    expect(inspected.code, inspected.stderr).toBe(0)
    const [info] = JSON.parse(inspected.stdout)
    expect(info.type).toBe('user')
    expect(info.children ?? []).toEqual([])
    // The plugin has its own @oclif/core, not the host's: the case where the host's handler meets our errors.
    expect(info.root).toContain(join('xdg-data', 'opsctl-test', 'node_modules', '@moctl', 'plugin-br'))
    const ours = createRequire(join(info.root, 'package.json')).resolve('@oclif/core')
    const theirs = createRequire(hostBin).resolve('@oclif/core')
    expect(ours).toContain(join(tmp.path, 'host-user'))
    expect(ours).not.toBe(theirs)
  })

  it('brings no second @oclif/plugin-plugins, nor its npm, into the host', async () => {
    const [info] = JSON.parse(inspected.stdout)
    const installedInto = join(info.root, '..', '..')
    expect(basename(installedInto)).toBe('node_modules')
    expect(await packagesNamed(installedInto, ['@oclif/plugin-plugins', 'npm'])).toEqual([])
  })

  it("has zstd-napi's native binding, the one this checkout built, not a second compile", async () => {
    const release = (root: string) => join(root, 'node_modules', 'zstd-napi', 'build', 'Release')
    const installedRelease = release(join(tmp.path, 'host-user', 'xdg-data', 'opsctl-test'))
    expect(await fileHash(join(installedRelease, 'binding.node'))).toBe(
      await fileHash(join(release(ROOT), 'binding.node')),
    )
    // node-gyp leaves its object files here; prebuild-install unpacks the binding alone.
    expect(await readdir(installedRelease)).toEqual(['binding.node'])
  })

  it('its own bin, run on its own there, has help, and says what `moctl plugins` needs', async () => {
    const [info] = JSON.parse(inspected.stdout)
    const bin = join(info.root, 'bin', 'run.js')
    const help = await runCli(['help', 'br'], {bin, env: hostEnv})
    expect(help.code, help.stderr).toBe(0)
    expect(help.stdout).toContain('$ moctl br COMMAND')
    const plugins = await runCli(['plugins'], {bin, env: hostEnv})
    expect(plugins.code).toBe(2)
    expect(plugins.stderr).toBe(
      'Error: moctl plugins needs @oclif/plugin-plugins\nHint: npm install -g @oclif/plugin-plugins@5 (beside moctl)\n',
    )
  })

  it('shows its commands under the host', async () => {
    const help = await host(['br', 'verify', '--help'])
    expect(help.code, help.stderr).toBe(0)
    expect(help.stderr).toBe('')
    expect(help.stdout).toContain(`${HOST_BIN} br verify`)
  })

  it("prints an error of ours exactly as standalone does, with no EEXIT lines, and exits with the error's code", async () => {
    const args = ['br', 'verify', 'nope', '--path', '/nonexistent']
    const reference = await standalone(args)
    expect(reference.code).toBe(2)
    expectSameError(await host(args), reference, HOST_BIN, [
      'Error: repository /nonexistent does not exist',
      `Hint: check --path; \`${HOST_BIN} br backup --path DIR\` creates a repository`,
    ])
  })

  it("prints oclif's own usage errors as standalone does", async () => {
    const args = ['br', 'list', '--path', tmp.path, '--no-such-flag']
    const reference = await standalone(args)
    expect(reference.code).toBe(2)
    expect(reference.stderr).toContain('Nonexistent flag: --no-such-flag')
    expect(flat((await host(args)).stderr)).toBe(flat(reference.stderr.replaceAll('moctl br ', `${HOST_BIN} br `)))
  })

  it('under --json: the error object on stdout, the exit code, nothing on stderr', async () => {
    const args = ['br', 'verify', 'nope', '--path', '/nonexistent', '--json']
    const reference = await standalone(args)
    const result = await host(args)
    expect(result.code).toBe(2)
    expect(result.stderr).toBe(reference.stderr)
    expect(JSON.parse(result.stdout)).toEqual(
      JSON.parse(reference.stdout.replaceAll('moctl br ', `${HOST_BIN} br `)) as unknown,
    )
    expect(JSON.parse(result.stdout).error).toMatchObject({
      exitCode: 2,
      message: 'repository /nonexistent does not exist',
    })
  })

  it('backs up and lists through the host', async () => {
    const data = join(tmp.path, 'plain', 'mo-data')
    await makeSmallDataDir(data)
    const repo = join(tmp.path, 'plain', 'repo')
    const backup = await host(backupArgs(repo, data, '--no-encrypt', ...NO_SQL))
    expect(backup.code, backup.stderr).toBe(0)
    const list = await host(['br', 'list', '--path', repo, '--json'])
    expect(list.code, list.stderr).toBe(0)
    expect(JSON.parse(list.stdout).map((r: {id: string}) => r.id)).toEqual([backup.stdout.trim()])
  })

  describe('our hooks in the installed plugin', () => {
    if (!mariadbAvailable()) {
      it('needs mariadbd', ({skip}) => {
        skip(skipReason())
      })
      return
    }

    let server: TestServer
    beforeAll(async () => {
      server = await startMariadb()
    })
    afterAll(async () => {
      await server?.cleanup()
    })

    it('stop and start a real server around a backup with --service command', async () => {
      await server.query('create database through_host')
      const pidBefore = await server.pid()
      expect(pidBefore).toBeGreaterThan(0)
      const markers = join(tmp.path, 'service-markers.txt')
      const backup = await host(
        backupArgs(
          join(tmp.path, 'repo-service'),
          server.dataDir,
          '--no-encrypt',
          '--json',
          ...mariadbService(server, {
            start: `echo start >>'${markers}' && ${server.startCommand}`,
            stop: `${server.stopCommand} && echo stop >>'${markers}'`,
          }),
        ),
      )
      expect(backup.code, backup.stderr).toBe(0)
      expect(JSON.parse(backup.stdout).serviceDownMs).toBeGreaterThan(0)
      expect(await readFile(markers, 'utf8')).toBe('stop\nstart\n')
      const pidAfter = await server.pid()
      expect(pidAfter).toBeGreaterThan(0)
      expect(pidAfter).not.toBe(pidBefore)
      expect(await server.query('show databases')).toContainEqual({Database: 'through_host'})
    })
  })
})

describe('installed on its own with npm install -g ./x.tgz', () => {
  it('runs br --help from the prefix bin', async () => {
    const help = await installed(['br', '--help'])
    expect(help.code, help.stderr).toBe(0)
    expect(help.stdout).toContain('$ moctl br COMMAND')
    for (const cmd of ['br backup', 'br list', 'br restore', 'br verify']) expect(help.stdout).toContain(cmd)
  })

  it('keeps help and plugins', async () => {
    const help = await installed(['help', 'br'])
    expect(help.code, help.stderr).toBe(0)
    expect(help.stdout).toContain('$ moctl br COMMAND')
    const plugins = await installed(['plugins'])
    expect(plugins.code, plugins.stderr).toBe(0)
    expect(plugins.stdout + plugins.stderr).toMatch(/no plugins installed/i)
  })

  it('prints an error as the dev checkout does', async () => {
    const args = ['br', 'verify', 'nope', '--path', '/nonexistent']
    expectSameError(await installed(args), await standalone(args), 'moctl', [
      'Error: repository /nonexistent does not exist',
      'Hint: check --path; `moctl br backup --path DIR` creates a repository',
    ])
  })
})
