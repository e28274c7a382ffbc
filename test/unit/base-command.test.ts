/**
 * How a br command resolves its settings, in process: a flag given on the command line wins over
 * its environment variable, which wins over `moctl br config` (the file under XDG_CONFIG_HOME);
 * a file value gives way to a flag or variable that chooses another way (a passphrase over the
 * file's recipient); a setting nobody gave is a usage error that says all three ways to give it.
 *
 * A probe command with backup's own flags runs BrCommand.parse and returns what it resolved,
 * against a real config file: no CLI process. One CLI run of the same (integration/config.test.ts)
 * proves the wiring end to end.
 */
import {Config, ux} from '@oclif/core'
import {join} from 'node:path'
import {afterAll, beforeAll, beforeEach, describe, expect, it, vi} from 'vitest'

import {BrCommand} from '../../src/base-command.js'
import Backup from '../../src/commands/br/backup.js'
import {configFile, setConfig} from '../../src/lib/config.js'
import {BrError} from '../../src/lib/errors.js'
import {type RepoAddress} from '../../src/lib/repo/address.js'
import {suiteKey} from '../helpers/args.js'
import {ROOT, tempDir, type TempDir} from '../helpers/cli.js'

type Resolved = Record<string, unknown>

/** Backup's flags, resolved and returned; nothing is backed up. */
class Probe extends BrCommand {
  static override flags = Backup.flags

  public async run(): Promise<Resolved> {
    const {flags} = await this.parse(Probe)
    return flags
  }
}

/** Backup's flags, and the repository address BrCommand.repoAddress builds from them. */
class AddressProbe extends BrCommand {
  static override flags = Backup.flags

  public async run(): Promise<RepoAddress> {
    const {flags} = await this.parse(AddressProbe)
    return this.repoAddress(flags)
  }
}

/** A result with what JSON must carry through as is: format specifiers, non-ASCII, nesting, null. */
const AWKWARD = {n: [1, null, true, {deep: 'x'}], name: 'mo-data ü 数据', path: '/b/%s %% %d/\\'}

/** Returns AWKWARD: what --json prints of a result. */
class JsonProbe extends BrCommand {
  public async run(): Promise<typeof AWKWARD> {
    await this.parse(JsonProbe)
    return AWKWARD
  }

  /** oclif's whole run of the command, which prints the --json result (protected _run). */
  public async runWhole(): Promise<unknown> {
    return this._run()
  }
}

let tmp: TempDir
let home: string
let n = 0
let recipient: string

beforeAll(async () => {
  tmp = await tempDir('moctl-br-precedence-')
  recipient = (await suiteKey(tmp.path)).recipient
})
afterAll(() => tmp?.cleanup())

// Each test its own config dir, and none of the developer's variables.
beforeEach(() => {
  home = join(tmp.path, `xdg-${++n}`)
  vi.stubEnv('XDG_CONFIG_HOME', home)
  for (const name of ['MOCTL_BR_REPO', 'MOCTL_BR_DATA_DIR', 'MOCTL_BR_PASSPHRASE', 'MOCTL_BR_RECIPIENT']) {
    // undefined removes the variable (vitest's stubEnv); the argument is required by its type
    // eslint-disable-next-line unicorn/no-useless-undefined
    vi.stubEnv(name, undefined)
  }
})

/** oclif reads XDG_CONFIG_HOME when it loads: a fresh Config per run sees this test's dir. */
async function resolve(argv: string[]): Promise<Resolved> {
  const config = await Config.load({root: ROOT})
  expect(config.configDir).toBe(join(home, 'moctl'))
  return new Probe(argv, config).run()
}

const set = (key: Parameters<typeof setConfig>[1], value: string) =>
  setConfig(configFile(join(home, 'moctl')), key, value)

/** Backup cannot do without these two: given as flags where a test is about other settings. */
const REQUIRED = ['--path', '/flag/repo', '--data-dir', '/flag/mo-data']

describe('flag > environment > config file', () => {
  it('the repository: --path, else MOCTL_BR_REPO, else the file', async () => {
    await set('path', '/from/file')
    await set('data-dir', '/file/mo-data')
    expect((await resolve([])).path).toBe('/from/file')
    vi.stubEnv('MOCTL_BR_REPO', '/from/env')
    expect((await resolve([])).path).toBe('/from/env')
    expect((await resolve(['--path', '/from/flag'])).path).toBe('/from/flag')
  })

  it('the data dir: --data-dir, else MOCTL_BR_DATA_DIR, else the file', async () => {
    await set('data-dir', '/file/mo-data')
    expect((await resolve(['--path', '/r']))['data-dir']).toBe('/file/mo-data')
    vi.stubEnv('MOCTL_BR_DATA_DIR', '/env/mo-data')
    expect((await resolve(['--path', '/r']))['data-dir']).toBe('/env/mo-data')
    expect((await resolve(['--path', '/r', '--data-dir', '/flag/mo-data']))['data-dir']).toBe('/flag/mo-data')
  })

  it('a number from the file is a default, and the flag still wins', async () => {
    await set('port', '6002')
    await set('sql-timeout', '7')
    expect(await resolve(REQUIRED)).toMatchObject({port: 6002, 'sql-timeout': 7})
    expect(await resolve([...REQUIRED, '--port', '6003'])).toMatchObject({port: 6003, 'sql-timeout': 7})
  })

  it("the file's recipient gives way to a passphrase from a flag or from the environment", async () => {
    await set('recipient', recipient)
    expect((await resolve(REQUIRED)).recipient).toEqual([recipient])
    const byFlag = await resolve([...REQUIRED, '--passphrase-file', join(tmp.path, 'pass')])
    expect(byFlag.recipient).toBeUndefined()
    expect(byFlag['passphrase-file']).toBe(join(tmp.path, 'pass'))
    vi.stubEnv('MOCTL_BR_PASSPHRASE', 'battery staple')
    expect((await resolve(REQUIRED)).recipient).toBeUndefined()
  })

  it('without a file, flags and variables alone resolve, as before there was a config', async () => {
    vi.stubEnv('MOCTL_BR_REPO', '/env/repo')
    expect(await resolve(['--data-dir', '/d'])).toMatchObject({'data-dir': '/d', path: '/env/repo', port: 6001})
  })
})

/** The address a backup would use, with this test's config file. */
const address = async (argv: string[]) => new AddressProbe(argv, await Config.load({root: ROOT})).run()

describe('S3 settings from the config file', () => {
  it('apply to an s3:// repository, give way to flags, and are left out for a local --path', async () => {
    await set('path', 's3://mo-backups/prod')
    await set('endpoint', 'http://127.0.0.1:9000')
    await set('force-path-style', 'true')
    await set('region', 'eu-west-1')
    expect(await address(['--data-dir', '/d'])).toEqual({
      location: 's3://mo-backups/prod',
      s3: {
        bucket: 'mo-backups',
        endpoint: 'http://127.0.0.1:9000',
        forcePathStyle: true,
        prefix: 'prod/',
        region: 'eu-west-1',
      },
    })
    expect((await address(['--data-dir', '/d', '--region', 'us-west-2'])).s3?.region).toBe('us-west-2')
    // the file's S3 settings do not make a local --path a usage error
    expect(await address(['--data-dir', '/d', '--path', '/local/repo'])).toEqual({location: '/local/repo'})
    // given on the command line, they do
    await expect(address(['--data-dir', '/d', '--path', '/local/repo', '--region', 'x'])).rejects.toMatchObject({
      exitCode: 2,
      message: '--region is for an S3 repository, but --path /local/repo is a local directory',
    })
  })

  it("mo_br's --bucket on the command line wins over the file's path", async () => {
    await set('path', '/backups/mo')
    expect(await address(['--data-dir', '/d', '--backup_dir', 's3', '--bucket', 'mo-bkt', '--filepath', 'n'])).toEqual({
      location: 's3://mo-bkt/n',
      s3: {bucket: 'mo-bkt', forcePathStyle: false, prefix: 'n/'},
    })
  })
})

describe('a setting given nowhere', () => {
  it('is a usage error (exit 2) naming the flag, its variable and the config key', async () => {
    const error = await resolve(['--data-dir', '/d']).then(
      () => expect.fail('a repository is required'),
      (error_: unknown) => error_,
    )
    expect(error).toBeInstanceOf(BrError)
    expect(error).toMatchObject({code: 'usage', exitCode: 2})
    expect((error as BrError).message).toMatch(/^missing --path: the repository: a local directory/)
    expect((error as BrError).suggestions).toEqual([
      'pass --path, set MOCTL_BR_REPO, or keep a default with `moctl br config set path …`',
    ])
  })
})

/** What `--json` prints on stdout, and how often oclif's colouring ran. */
async function printed(config: Config): Promise<{colorized: number; out: string}> {
  const colorize = vi.spyOn(ux, 'colorizeJson')
  const chunks: string[] = []
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => chunks.push(String(chunk)) > 0)
  try {
    await new JsonProbe(['--json'], config).runWhole()
    return {colorized: colorize.mock.calls.length, out: chunks.join('')}
  } finally {
    write.mockRestore()
    colorize.mockRestore()
  }
}

describe('--json output', () => {
  it('is pretty JSON and a newline, without oclif colouring it token by token', async () => {
    const {colorized, out} = await printed(await Config.load({root: ROOT}))
    expect(out).toBe(`${JSON.stringify(AWKWARD, null, 2)}\n`)
    expect(JSON.parse(out)).toEqual(AWKWARD)
    // oclif's own output is the same bytes, slower: the override is only for speed.
    expect(ux.colorizeJson(AWKWARD, {pretty: true})).toBe(out.slice(0, -1))
    expect(colorized).toBe(0)
  })

  it("is left to oclif's colours on a terminal under a JSON theme", async () => {
    const config = await Config.load({root: ROOT})
    config.theme = {json: {key: '#ff0000'}}
    const tty = Object.getOwnPropertyDescriptor(process.stdout, 'isTTY')
    Object.defineProperty(process.stdout, 'isTTY', {configurable: true, value: true})
    try {
      expect((await printed(config)).colorized).toBe(1)
    } finally {
      if (tty) Object.defineProperty(process.stdout, 'isTTY', tty)
      else delete (process.stdout as {isTTY?: boolean}).isTTY
    }
  })
})
