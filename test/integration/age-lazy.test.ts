/**
 * typage (age-encryption) loads only where a key other than an X25519 one is handled: a backup to
 * `age1…` recipients, full and incremental (the base's manifest read with this host's cache), and
 * the verify and restore of it with an `AGE-SECRET-KEY-1…` identity (headers opened by
 * age-open.ts) never import it (its import is ~60 module files and 50-150 ms of CPU). Proven with
 * a module resolve hook (node:module register) in the CLI process that logs every age-encryption
 * specifier resolved; the same hook sees typage load when `key generate` makes an identity, so an
 * empty log means something. And `br list` loads none of our age code (lib/archive/age.js and what
 * it imports), which a backup to a recipient does.
 */
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {backupArgs, NO_SQL, readWith, restoreArgs, suiteKey} from '../helpers/args.js'
import {runCli, tempDir, type TempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'
import {resolveLogger, type ResolveLogger} from '../helpers/resolve-log.js'

let tmp: TempDir
let typageLog: ResolveLogger

beforeAll(async () => {
  tmp = await tempDir()
  typageLog = await resolveLogger(tmp.path, 'age-encryption', 'AGE_LOG')
})
afterAll(async () => tmp?.cleanup())

describe('typage loads lazily', () => {
  it('a backup to age1… recipients, full then incremental, its verify and its restore never resolve age-encryption; key generate does', async () => {
    const dataDir = join(tmp.path, 'mo-data')
    const repo = join(tmp.path, 'repo')
    await makeSmallDataDir(dataDir)
    const key = await suiteKey(tmp.path)
    const env = (log: string) => ({
      ...typageLog.env(log),
      XDG_CACHE_HOME: join(tmp.path, 'cache'),
    })
    for (const extra of [[], ['--type', 'incremental']]) {
      const run = await runCli(backupArgs(repo, dataDir, '--recipient', key.recipient, ...NO_SQL, '--json', ...extra), {
        env: env('backup.log'),
      })
      expect(run.code, run.stderr).toBe(0)
      expect(JSON.parse(run.stdout).type).toBe(extra.length > 0 ? 'incremental' : 'full')
    }

    expect(await typageLog.read('backup.log')).toBe('')

    // An incremental whose base manifest is not cached here reads it from the repository.
    const uncached = await runCli(
      backupArgs(
        repo,
        dataDir,
        '--recipient',
        key.recipient,
        '--identity',
        key.identity,
        ...NO_SQL,
        '--json',
        '--type',
        'incremental',
      ),
      {env: {...env('uncached.log'), XDG_CACHE_HOME: join(tmp.path, 'other-cache')}},
    )
    expect(uncached.code, uncached.stderr).toBe(0)
    expect(await typageLog.read('uncached.log')).toBe('')

    // Reading: every header of the chain (manifests and archives) opened with the identity.
    const verify = await runCli(['br', 'verify', 'latest', '--path', repo, ...readWith(key), '--json'], {
      env: env('read.log'),
    })
    expect(verify.code, verify.stderr).toBe(0)
    const target = join(tmp.path, 'restored')
    const restore = await runCli(
      restoreArgs('latest', repo, target, ...readWith(key), ...NO_SQL, '--service', 'none', '--json'),
      {
        env: env('read.log'),
      },
    )
    expect(restore.code, restore.stderr).toBe(0)
    expect(await typageLog.read('read.log')).toBe('')

    // The control: the same hook in a run that makes an identity (typage's generator) sees typage.
    const generate = await runCli(['br', 'key', 'generate', '--output', join(tmp.path, 'new.key')], {
      env: env('generate.log'),
    })
    expect(generate.code, generate.stderr).toBe(0)
    expect(await typageLog.read('generate.log')).toContain('age-encryption')
  }, 60_000)
})

describe('br list loads no encryption code', () => {
  it('br list resolves none of our age modules; a backup to a recipient does', async () => {
    const ours = await resolveLogger(tmp.path, '/age.js', 'OURS_LOG')
    const dataDir = join(tmp.path, 'list-data')
    const repo = join(tmp.path, 'list-repo')
    await makeSmallDataDir(dataDir)
    const key = await suiteKey(tmp.path, 'list.key')
    // The control: a backup checks and encrypts to its recipient through lib/archive/age.js.
    const backup = await runCli(backupArgs(repo, dataDir, '--recipient', key.recipient, ...NO_SQL), {
      env: ours.env('list-backup.log'),
    })
    expect(backup.code, backup.stderr).toBe(0)
    expect(await ours.read('list-backup.log')).toContain('/age.js')
    const list = await runCli(['br', 'list', '--path', repo], {env: ours.env('list.log')})
    expect(list.code, list.stderr).toBe(0)
    expect(list.stdout).toContain(backup.stdout.trim())
    expect(await ours.read('list.log')).toBe('')
  }, 60_000)
})
