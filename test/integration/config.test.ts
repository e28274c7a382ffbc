/**
 * `moctl br config` (in process: runInProcess), with XDG_CONFIG_HOME pointing at a temp dir (oclif's config dir
 * is then <it>/moctl): set, get, unset and list; the checks on keys and values; and the file's
 * values as defaults of backup, list, verify and the service flags, end to end. Which of flag,
 * environment variable and file wins is proven in process (test/unit/base-command.test.ts). The service settings are proven through a fake `systemctl` first
 * on PATH that records its arguments (no systemd runs here).
 */
import {existsSync} from 'node:fs'
import {chmod, chown, mkdir, readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, beforeEach, describe, expect, it} from 'vitest'

import {type ConfigKey, setConfig} from '../../src/lib/config.js'
import {suiteKey} from '../helpers/args.js'
import {runCli, runInProcess, tempDir, type TempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'

let tmp: TempDir
let dataDir: string
let keyFile: string
let recipient: string
let home: string
let configPath: string
let n = 0

beforeAll(async () => {
  tmp = await tempDir('moctl-br-config-')
  dataDir = join(tmp.path, 'mo-data')
  await makeSmallDataDir(dataDir)
  const key = await suiteKey(tmp.path)
  keyFile = key.identity
  recipient = key.recipient
})
afterAll(async () => tmp?.cleanup())

// Each test its own config dir.
beforeEach(async () => {
  home = join(tmp.path, `xdg-${++n}`)
  await mkdir(home)
  configPath = join(home, 'moctl', 'config.json')
})

/** A br command in process (runInProcess); in a process of its own where it runs in `cwd`. */
const br = (args: string[], env: NodeJS.ProcessEnv = {}, cwd?: string) =>
  cwd
    ? runCli(['br', ...args], {cwd, env: {XDG_CONFIG_HOME: home, ...env}})
    : runInProcess(['br', ...args], {env: {XDG_CONFIG_HOME: home, ...env}})

/** `br config set` through the CLI: for the tests whose point is that command. */
async function brSet(key: string, value: string): Promise<void> {
  const r = await br(['config', 'set', key, value])
  expect(r.code, r.stderr).toBe(0)
}

/**
 * A setting a test starts from, written in process by the code `br config set` runs (setConfig):
 * no CLI run (~0.5 CPU-s each) for what is not the test's point. The CLI's set is proven above.
 */
async function set(key: ConfigKey, value: string): Promise<void> {
  await setConfig(configPath, key, value)
}

describe('config set, get, unset, list', () => {
  it('keeps settings in <config dir>/moctl/config.json, mode 0600, paths made absolute', async () => {
    const set1 = await br(['config', 'set', 'path', 'backups/mo'], {}, tmp.path)
    expect(set1).toMatchObject({code: 0, stdout: ''})
    expect(set1.stderr).toBe(`path = ${join(tmp.path, 'backups/mo')} (in ${configPath})\n`)
    await brSet('port', '6002')
    await brSet('service', 'mo_ctl')
    expect(JSON.parse(await readFile(configPath, 'utf8'))).toEqual({
      path: join(tmp.path, 'backups/mo'),
      port: 6002,
      service: 'mo_ctl',
    })
    expect((await stat(configPath)).mode & 0o777).toBe(0o600)
    expect((await stat(join(home, 'moctl'))).mode & 0o777).toBe(0o700)

    expect(await br(['config', 'get', 'port'])).toMatchObject({code: 0, stdout: '6002\n'})
    expect(JSON.parse((await br(['config', 'get', 'service', '--json'])).stdout)).toEqual({
      file: configPath,
      key: 'service',
      value: 'mo_ctl',
    })
    const list = await br(['config', 'list'])
    expect(list).toMatchObject({code: 0, stdout: `path=${join(tmp.path, 'backups/mo')}\nport=6002\nservice=mo_ctl\n`})

    expect((await br(['config', 'unset', 'port'])).code).toBe(0)
    expect(JSON.parse((await br(['config', 'list', '--json'])).stdout)).toEqual({
      file: configPath,
      values: {path: join(tmp.path, 'backups/mo'), service: 'mo_ctl'},
    })
  })

  it('get of a key that is not set exits 1, naming the file', async () => {
    const r = await br(['config', 'get', 'unit'])
    expect(r).toMatchObject({code: 1, stdout: ''})
    expect(r.stderr).toContain(`Error: unit is not set in ${configPath}`)
  })

  it('refuses unknown keys (listing the valid ones), bad values and private keys, with exit 2', async () => {
    const unknown = await br(['config', 'set', 'prot', '6001'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain('Error: unknown config key prot')
    expect(unknown.stderr).toContain(
      'Hint: valid keys: access-key-id, data-dir, endpoint, force-path-style, host, identity, mo-ctl, password-file, path, port, profile, recipient, region, role-arn, secret-access-key-file, service, sql-timeout, start-cmd, stop-cmd, trusted-signer, unit, user, writer-key',
    )
    const password = await br(['config', 'set', 'password', 'hunter2'])
    expect(password.code).toBe(2)
    expect(password.stderr).toContain('Error: the config file takes no secrets: password cannot be set')
    expect(password.stderr).toContain(
      'Hint: write the password in a file (mode 0600) and set password-file to its path',
    )
    expect(password.stderr).not.toContain('hunter2')
    expect((await br(['config', 'get', 'password'])).code).toBe(2)
    // Every bad value is checked in process (unit/lib/config.test.ts); one through the CLI here.
    const port = await br(['config', 'set', 'port', '70000'])
    expect(port.code).toBe(2)
    expect(port.stderr).toContain('Error: config port must be a whole number from 1 to 65535, not 70000')

    expect(await readFile(configPath, 'utf8').catch(() => 'no file')).toBe('no file')
  })

  it('a stop-cmd with a password is kept, with a warning, and shown as -p*** when set', async () => {
    const r = await br(['config', 'set', 'stop-cmd', 'mysqladmin -uroot -pHunter2x shutdown'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toContain('stop-cmd holds what looks like a password')
    expect(r.stderr).toContain(`stop-cmd = mysqladmin -uroot -p*** shutdown (in ${configPath})`)
    expect(r.stderr.replaceAll(/\s+›\s+/g, ' ')).not.toContain('Hunter2x')
    // get is how the operator reads it back: whole.
    expect((await br(['config', 'get', 'stop-cmd'])).stdout).toBe('mysqladmin -uroot -pHunter2x shutdown\n')
  })

  it('a damaged config file is reported, naming it (exit 2), by the commands that read it', async () => {
    await mkdir(join(home, 'moctl'))
    await writeFile(configPath, '{"path": ')
    for (const args of [['list'], ['config', 'set', 'port', '1']]) {
      const r = await br(args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr).toContain(`Error: config file ${configPath} is damaged (not a JSON object)`)
    }

    await writeFile(configPath, '{"prot": 1}')
    expect((await br(['list'])).stderr).toContain(`config file ${configPath} has an unknown key prot`)
    // Commands without flags the file could set do not read it.
    expect((await br(['key', 'generate', '--output', join(home, 'k')])).code).toBe(0)
  })
})

describe('config values as flag defaults', () => {
  it('backup, list and verify take the repository, data dir and keys from the file', async () => {
    const repo = join(tmp.path, 'repo-from-config')
    await set('path', repo)
    await set('data-dir', dataDir)
    await set('recipient', recipient)
    await set('identity', keyFile)
    await set('port', '1')
    const backup = await br(['backup', '--json'])
    expect(backup.code, backup.stderr).toBe(0)
    const record = JSON.parse(backup.stdout)
    expect(record).toMatchObject({encryption: {recipients: [recipient], type: 'recipients'}, source: {dataDir}})
    const list = JSON.parse((await br(['list', '--json'])).stdout)
    expect(list.map((r: {id: string}) => r.id)).toEqual([record.id])
    const verify = await br(['verify', record.id])
    expect(verify.code, verify.stderr).toBe(0)
    expect(verify.stdout).toContain(`backup ${record.id}: ok`)
  })

  it('the service settings come from the file: systemd, its unit, the SQL port and deadline', async () => {
    const bin = join(tmp.path, `bin-${n}`)
    await mkdir(bin)
    const calls = join(bin, 'calls')
    await writeFile(
      join(bin, 'systemctl'),
      `#!/bin/sh\necho "$*" >> '${calls}'\n[ "$1" = is-active ] && exit 3\nexit 0\n`,
    )
    await chmod(join(bin, 'systemctl'), 0o755)
    await set('service', 'systemd')
    await set('unit', 'mo-test.service')
    await set('port', '1')
    await set('sql-timeout', '1')
    const PATH = `${bin}:${process.env.PATH}`
    const started = Date.now()
    const backup = await br(
      ['backup', '--path', join(tmp.path, 'repo-systemd'), '--data-dir', dataDir, '--no-encrypt'],
      {
        PATH,
      },
    )
    // Stopped and started through systemctl; then nothing answers SQL on port 1 within 1 s: exit 5.
    expect(backup.code, backup.stderr).toBe(5)
    expect(backup.stderr).toContain('service did not answer SQL on 127.0.0.1:1 within 1.0s')
    expect(Date.now() - started).toBeLessThan(20_000)
    expect((await readFile(calls, 'utf8')).trim().split('\n')).toEqual([
      'stop mo-test.service',
      'is-active --quiet mo-test.service',
      'start mo-test.service',
    ])

    // --service on the command line wins over the file's.
    const none = await br(
      ['backup', '--path', join(tmp.path, 'repo-none'), '--data-dir', dataDir, '--no-encrypt', '--service', 'none'],
      {PATH},
    )
    expect(none.code, none.stderr).toBe(0)
    expect((await readFile(calls, 'utf8')).trim().split('\n')).toHaveLength(3)
  })

  it('a mo_ctl path from the file that is not executable is a usage error before anything is stopped', async () => {
    await set('service', 'mo_ctl')
    await set('mo-ctl', join(tmp.path, 'no-mo_ctl'))
    const r = await br(['backup', '--path', join(tmp.path, 'repo-moctl'), '--data-dir', dataDir, '--no-encrypt'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`Error: mo_ctl script ${join(tmp.path, 'no-mo_ctl')} is not an executable file`)
  })
})

describe('a config file or directory that others could write is refused, as ssh refuses such a ~/.ssh/config', () => {
  it('a file others or its group can write: exit 2, naming the file and `chmod go-w`, before anything runs', async () => {
    // The file's stop command would leave a marker: it must never run.
    const marker = join(home, 'stop-ran')
    await set('service', 'command')
    await set('stop-cmd', `touch '${marker}'`)
    await set('start-cmd', 'true')
    const backup = ['backup', '--path', join(home, 'repo'), '--data-dir', dataDir, '--no-encrypt']
    const setPort = ['config', 'set', 'port', '1']
    // Each mode through one command, each command at least once; every mode's message is also
    // checked in process (unit/lib/config.test.ts, checkTrusted).
    for (const [mode, who, args] of [
      [0o666, 'other users', backup],
      [0o602, 'other users', setPort],
      [0o620, 'its group', backup],
    ] as const) {
      await chmod(configPath, mode)
      const r = await br([...args])
      expect(r.code, r.stderr).toBe(2)
      expect(r.stderr).toContain(
        `Error: config file ${configPath} can be written by ${who} (mode 0${mode.toString(8)}): refusing to use it`,
      )
      expect(r.stderr).toContain(`Hint: chmod go-w ${configPath}`)
      expect(existsSync(marker), 'the stop command of the file ran').toBe(false)
    }

    // Once fixed as the hint says, the file is used again.
    await chmod(configPath, 0o644)
    expect((await br(['config', 'get', 'start-cmd'])).stdout).toBe('true\n')
  })

  it('a config directory others can write is refused; a sticky one (like /tmp) is not', async () => {
    await set('stop-cmd', 'mo_ctl stop')
    const dir = join(home, 'moctl')
    await chmod(dir, 0o777)
    for (const args of [
      ['config', 'list'],
      ['config', 'set', 'port', '1'],
      ['list', '--path', join(home, 'repo')],
    ]) {
      const r = await br(args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr).toContain(`Error: config directory ${dir} can be written by other users (mode 0777)`)
      expect(r.stderr).toContain(`Hint: chmod go-w ${dir}`)
    }

    await chmod(dir, 0o1777)
    expect(await br(['config', 'list'])).toMatchObject({code: 0, stdout: 'stop-cmd=mo_ctl stop\n'})
  })

  const root = process.getuid?.() === 0
  it.skipIf(!root)(
    `a file owned by another user is refused, naming its owner and the chown fix${root ? '' : ' (skipped: needs root to chown)'}`,
    async () => {
      await set('stop-cmd', 'mo_ctl stop')
      await chown(configPath, 54_321, 54_321)
      const r = await br(['config', 'list'])
      expect(r.code).toBe(2)
      expect(r.stderr).toContain(`Error: config file ${configPath} is owned by uid 54321, not by you (uid 0) or root`)
      expect(r.stderr).toContain(`Hint: if you trust its content: chown 0 ${configPath}`)
      await chown(configPath, 0, 0)
      expect((await br(['config', 'list'])).code).toBe(0)
    },
  )
})
