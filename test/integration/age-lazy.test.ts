/**
 * typage (age-encryption) loads only where a header is read or a key other than an X25519
 * recipient is handled: a backup to `age1…` recipients, full and incremental (the base's manifest
 * from this host's cache), never imports it (its import is ~150 ms of CPU, a tenth of an
 * incremental backup). Proven with a module resolve hook (node:module register) in the CLI process
 * that logs every age-encryption specifier resolved; the same hook sees typage load when verify
 * reads the archive with an identity, so an empty log means something.
 */
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {backupArgs, NO_SQL, suiteKey} from '../helpers/args.js'
import {runCli, tempDir, type TempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'
import {resolveLogger} from '../helpers/resolve-log.js'

let tmp: TempDir
let nodeOptions: string

const logOf = async (name: string) => readFile(join(tmp.path, name), 'utf8').catch(() => '')

beforeAll(async () => {
  tmp = await tempDir()
  nodeOptions = await resolveLogger(tmp.path, 'age-encryption', 'AGE_LOG')
})
afterAll(async () => tmp?.cleanup())

describe('typage loads lazily', () => {
  it('a backup to age1… recipients, full then incremental, never resolves age-encryption; verify with an identity does', async () => {
    const dataDir = join(tmp.path, 'mo-data')
    const repo = join(tmp.path, 'repo')
    await makeSmallDataDir(dataDir)
    const key = await suiteKey(tmp.path)
    const env = (log: string) => ({
      AGE_LOG: join(tmp.path, log),
      NODE_OPTIONS: nodeOptions,
      XDG_CACHE_HOME: join(tmp.path, 'cache'),
    })
    for (const extra of [[], ['--type', 'incremental']]) {
      const run = await runCli(backupArgs(repo, dataDir, '--recipient', key.recipient, ...NO_SQL, '--json', ...extra), {
        env: env('backup.log'),
      })
      expect(run.code, run.stderr).toBe(0)
      expect(JSON.parse(run.stdout).type).toBe(extra.length > 0 ? 'incremental' : 'full')
    }

    expect(await logOf('backup.log')).toBe('')

    // The control: the same hook in a run that opens the archive's header sees typage.
    const verify = await runCli(['br', 'verify', 'latest', '--path', repo, '--identity', key.identity, '--json'], {
      env: env('verify.log'),
    })
    expect(verify.code, verify.stderr).toBe(0)
    expect(await logOf('verify.log')).toContain('age-encryption')
  }, 60_000)
})
