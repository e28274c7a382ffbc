/**
 * lib/config.ts on real files: values checked and normalised when set and when read, the file
 * replaced whole with mode 0600, and stored values turned into flag defaults.
 */
import {readdir, readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {
  checkTrusted,
  configFile,
  flagDefault,
  parseConfigKey,
  parseConfigValue,
  readConfig,
  setConfig,
  unsetConfig,
  yieldsTo,
} from '../../../src/lib/config.js'
import {tempDir} from '../../helpers/cli.js'

let tmp: {cleanup: () => Promise<void>; path: string}
let file: string
beforeEach(async () => {
  tmp = await tempDir()
  file = configFile(join(tmp.path, 'moctl'))
})
afterEach(async () => tmp.cleanup())

const KEY_A = 'age1' + 'q'.repeat(58)
const KEY_B = 'age1' + 'p'.repeat(58)

describe('parseConfigValue', () => {
  it('stores paths absolute, keeps a bare mo_ctl name for PATH, and integers as numbers', () => {
    expect(parseConfigValue('path', 'backups', '/srv')).toBe('/srv/backups')
    expect(parseConfigValue('identity', '../keys/k', '/srv/x')).toBe('/srv/keys/k')
    expect(parseConfigValue('mo-ctl', 'mo_ctl', '/srv')).toBe('mo_ctl')
    expect(parseConfigValue('mo-ctl', './bin/mo_ctl', '/srv')).toBe('/srv/bin/mo_ctl')
    expect(parseConfigValue('port', ' 6001 ')).toBe(6001)
    expect(parseConfigValue('stop-cmd', 'mo_ctl stop')).toBe('mo_ctl stop')
    expect(parseConfigValue('recipient', `${KEY_A}, ${KEY_B}`)).toBe(`${KEY_A},${KEY_B}`)
  })

  it('refuses empty values, non-numbers and out-of-range numbers (exit 2)', () => {
    expect(() => parseConfigValue('unit', '  ')).toThrow(
      expect.objectContaining({exitCode: 2, message: 'config unit cannot be empty'}),
    )
    for (const bad of ['6001.5', '-1', '0', '65536', '1e3']) {
      expect(() => parseConfigValue('port', bad), bad).toThrow(expect.objectContaining({exitCode: 2}))
    }
  })

  // What `br config set` refuses (exit 2), decided here; integration/config.test.ts keeps one CLI run.
  it.each([
    ['port', '70000', 'config port must be a whole number from 1 to 65535, not 70000'],
    ['sql-timeout', '0', 'config sql-timeout must be a whole number of at least 1, not 0'],
    ['service', 'docker', 'config service must be one of mo_ctl, systemd, command, none, not docker'],
    ['recipient', 'age1notakey!', 'config recipient: age1notakey! is not an age public key (age1…)'],
    [
      'identity',
      `AGE-SECRET-KEY-1${'Q'.repeat(58)}`,
      'config identity looks like a private key: the config file takes no secrets',
    ],
  ] as const)('refuses %s %s as a usage error (exit 2)', (key, value, message) => {
    expect(() => parseConfigValue(key, value)).toThrow(
      expect.objectContaining({code: 'usage', exitCode: 2, message: expect.stringContaining(message)}),
    )
  })

  it('refuses secrets as keys, saying where a secret goes instead', () => {
    expect(() => parseConfigKey('password')).toThrow(
      expect.objectContaining({
        code: 'usage',
        message: 'the config file takes no secrets: password cannot be set',
        suggestions: ['write the password in a file (mode 0600) and set password-file to its path, or use MO_PASSWORD'],
      }),
    )
    expect(() => parseConfigKey('prot')).toThrow(
      expect.objectContaining({
        message: 'unknown config key prot',
        suggestions: [
          'valid keys: access-key-id, data-dir, endpoint, force-path-style, host, identity, mo-ctl, password-file, path, port, profile, recipient, region, role-arn, secret-access-key-file, service, sql-timeout, start-cmd, stop-cmd, trusted-signer, unit, user, writer-key',
        ],
      }),
    )
    expect(() => parseConfigKey('secret_access_key')).toThrow(
      expect.objectContaining({
        message: 'the config file takes no secrets: secret_access_key cannot be set',
        suggestions: [
          'write the secret key in a file (mode 0600) and set secret-access-key-file to its path, or use AWS_SECRET_ACCESS_KEY',
        ],
      }),
    )
  })

  it('keeps an s3:// path as given, and stores the S3 settings (force-path-style as true or false)', () => {
    expect(parseConfigValue('path', 's3://bucket/mo', '/somewhere')).toBe('s3://bucket/mo')
    expect(parseConfigValue('secret-access-key-file', 'keys/s3', '/etc/moctl')).toBe('/etc/moctl/keys/s3')
    expect(parseConfigValue('endpoint', 'http://127.0.0.1:9000')).toBe('http://127.0.0.1:9000')
    expect(parseConfigValue('force-path-style', 'yes')).toBe('true')
    expect(parseConfigValue('force-path-style', 'False')).toBe('false')
    expect(() => parseConfigValue('force-path-style', 'maybe')).toThrow(
      expect.objectContaining({exitCode: 2, message: 'config force-path-style must be true or false, not maybe'}),
    )
    expect(flagDefault('force-path-style', 'true', false)).toBe(true)
    expect(flagDefault('force-path-style', 'false', false)).toBe(false)
  })

  it('parseConfigKey names the valid keys', () => {
    expect(parseConfigKey('sql-timeout')).toBe('sql-timeout')
    expect(() => parseConfigKey('toString')).toThrow(
      expect.objectContaining({exitCode: 2, message: 'unknown config key toString'}),
    )
  })
})

describe('flagDefault and yieldsTo', () => {
  it('gives lists and multiple-value flags arrays', () => {
    expect(flagDefault('recipient', `${KEY_A},${KEY_B}`, true)).toEqual([KEY_A, KEY_B])
    expect(flagDefault('identity', '/k', true)).toEqual(['/k'])
    expect(flagDefault('port', 6001, false)).toBe(6001)
  })

  it('the recipient gives way to the other ways of choosing the encryption', () => {
    expect(yieldsTo('recipient')).toEqual({
      env: ['MOCTL_BR_RECIPIENT', 'MOCTL_BR_PASSPHRASE', 'MOCTL_BR_WRITER_KEY'],
      flags: ['recipients-file', 'passphrase-file', 'no-encrypt', 'writer-key'],
    })
    expect(yieldsTo('writer-key').flags).toContain('passphrase-file')
    expect(yieldsTo('path')).toEqual({env: [], flags: []})
  })
})

describe('readConfig, setConfig, unsetConfig', () => {
  it('is empty without a file; set writes the whole file (0600) in key order, without temp files left', async () => {
    expect(await readConfig(file)).toEqual({})
    await setConfig(file, 'user', 'dump')
    await setConfig(file, 'host', '10.0.0.5')
    expect(await readFile(file, 'utf8')).toBe('{\n  "host": "10.0.0.5",\n  "user": "dump"\n}\n')
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect(await readdir(join(tmp.path, 'moctl'))).toEqual(['config.json'])
    expect(await unsetConfig(file, 'user')).toBe(true)
    expect(await unsetConfig(file, 'user')).toBe(false)
    expect(await readConfig(file)).toEqual({host: '10.0.0.5'})
  })

  it('checks a hand-edited file as strictly as set does', async () => {
    await setConfig(file, 'host', 'h')
    for (const [text, message] of [
      ['[]', 'is damaged (not a JSON object)'],
      ['{"port": "x"}', ': config port must be a whole number from 1 to 65535, not x'],
      ['{"port": 6001, "colour": "red"}', 'has an unknown key colour'],
      ['{"unit": {"name": "x"}}', ': config unit must be a string'],
    ]) {
      await writeFile(file, text)
      await expect(readConfig(file), text).rejects.toMatchObject({
        exitCode: 2,
        message: `config file ${file} ${message}`.replace(' :', ':'),
      })
      await expect(setConfig(file, 'user', 'root'), text).rejects.toMatchObject({exitCode: 2})
    }
  })
})

// A file and a directory as stat shows them (S_IFREG, S_IFDIR) with these permission bits.
const statFile = (uid: number, mode: number) => ({isDirectory: () => false, mode: 0o10_0000 | mode, uid})
const statDir = (uid: number, mode: number) => ({isDirectory: () => true, mode: 0o04_0000 | mode, uid})

describe('checkTrusted', () => {
  it('trusts what the user or root owns and only they can write, as ssh does', () => {
    expect(() => checkTrusted('/c/config.json', statFile(1000, 0o600), 'config file', 1000)).not.toThrow()
    expect(() => checkTrusted('/c/config.json', statFile(1000, 0o644), 'config file', 1000)).not.toThrow()
    // root's files are trusted by everyone (a config in /etc, a dir root made)
    expect(() => checkTrusted('/c', statDir(0, 0o755), 'config directory', 1000)).not.toThrow()
    // a sticky directory (like /tmp): others may add entries, never replace ours
    expect(() => checkTrusted('/tmp', statDir(0, 0o1777), 'config directory', 1000)).not.toThrow()
  })

  it('refuses another owner, and group or world write bits (exit 2), with the fix', () => {
    expect(() => checkTrusted('/c/config.json', statFile(1001, 0o600), 'config file', 1000)).toThrow(
      'config file /c/config.json is owned by uid 1001, not by you (uid 1000) or root',
    )
    expect(() => checkTrusted('/c/config.json', statFile(0, 0o666), 'config file', 1000)).toThrow(
      'config file /c/config.json can be written by other users (mode 0666)',
    )
    expect(() => checkTrusted('/c', statDir(1000, 0o770), 'config directory', 1000)).toThrow(
      'config directory /c can be written by its group (mode 0770)',
    )
    let error: unknown
    try {
      checkTrusted('/c/config.json', statFile(0, 0o620), 'config file', 0)
    } catch (error_) {
      error = error_
    }

    expect(error).toMatchObject({exitCode: 2, suggestions: ['chmod go-w /c/config.json']})
  })

  it('names who can write: other users for any world write bit, its group for the group bit alone', () => {
    for (const [mode, who] of [
      [0o666, 'other users'],
      [0o602, 'other users'],
      [0o620, 'its group'],
    ] as const)
      expect(() => checkTrusted('/c/config.json', statFile(1000, mode), 'config file', 1000)).toThrow(
        `config file /c/config.json can be written by ${who} (mode 0${mode.toString(8)}): refusing to use it`,
      )
  })
})

describe('password-file', () => {
  it('is a path, given way to by --password and MO_PASSWORD; a password itself is no key', () => {
    expect(parseConfigValue('password-file', 'pw', '/etc/moctl')).toBe('/etc/moctl/pw')
    expect(yieldsTo('password-file')).toEqual({env: ['MO_PASSWORD'], flags: ['password']})
    expect(() => parseConfigKey('password')).toThrow('the config file takes no secrets: password cannot be set')
  })
})
