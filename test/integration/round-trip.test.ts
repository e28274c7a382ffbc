/**
 * One end-to-end round trip of the CLI as a process (bin/run.js) on real files: key generate,
 * backup encrypted to that key, list, verify every file, restore into a new directory, and the
 * restored tree compared byte for byte with the source. It runs in the Node 20 integration
 * project and in the Node 24 leg, where it is the leg's one CLI round trip: the flags, messages
 * and refusals are cli.test.ts's, on Node 20 only. A passphrase round trip is left to cli.test.ts:
 * on Node 24, scrypt at age's 2^18 runs in the archive unit tests (age-scrypt.test.ts).
 */
import {readFile, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {backupArgs, NO_SQL, restoreArgs} from '../helpers/args.js'
import {runCli, tempDir, type TempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'
import {treeHashes} from '../helpers/tree.js'

let tmp: TempDir
let dataDir: string
let repo: string
let keyFile: string

beforeAll(async () => {
  tmp = await tempDir('moctl-br-round-trip-')
  dataDir = join(tmp.path, 'mo-data')
  repo = join(tmp.path, 'repo')
  keyFile = join(tmp.path, 'backup.key')
  await makeSmallDataDir(dataDir)
})

afterAll(async () => {
  await tmp?.cleanup()
})

describe('a backup round trip through the CLI', () => {
  it('generates a key, backs up to it, lists, verifies and restores the tree byte for byte', async () => {
    const generated = await runCli(['br', 'key', 'generate', '--output', keyFile])
    expect(generated.code, generated.stderr).toBe(0)
    const recipient = generated.stdout.trim()
    expect(recipient).toMatch(/^age1[0-9a-z]{58}$/)
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600)

    const backup = await runCli(backupArgs(repo, dataDir, '--recipient', recipient, ...NO_SQL))
    expect(backup.code, backup.stderr).toBe(0)
    const id = backup.stdout.trim()
    const record = JSON.parse(await readFile(join(repo, 'backups', id, 'backup.json'), 'utf8'))
    expect(record).toMatchObject({encryption: {recipients: [recipient], type: 'recipients'}, id, type: 'full'})

    const list = await runCli(['br', 'list', '--path', repo, '--json'])
    expect(list.code, list.stderr).toBe(0)
    expect(JSON.parse(list.stdout).map((r: {id: string}) => r.id)).toEqual([id])

    const verify = await runCli(['br', 'verify', id, '--path', repo, '--identity', keyFile, '--json'])
    expect(verify.code, verify.stderr).toBe(0)
    expect(JSON.parse(verify.stdout)).toMatchObject({checked: 'every file', id, ok: true})

    const target = join(tmp.path, 'restored')
    const restore = await runCli(restoreArgs(id, repo, target, '--identity', keyFile, ...NO_SQL))
    expect(restore.code, restore.stderr).toBe(0)
    const source = await treeHashes(dataDir)
    // The cache directory is left out of every backup by design (cli.test.ts asserts why).
    const expected = Object.fromEntries(Object.entries(source).filter(([path]) => !path.startsWith('shared-cache')))
    expect(Object.keys(expected).length).toBeGreaterThan(10)
    expect(await treeHashes(target)).toEqual(expected)
  })
})
