/**
 * copyBackups in process, filesystem to filesystem, on real repositories of real backups: signed
 * with a writer key and encrypted to its recipient (the copy never holds a key), then verified
 * in the target with the reader key, as the offsite host's restore would.
 */
import {cp, mkdir, open, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {BackupRecord} from '../../../../src/lib/repo/types.js'

import {localRepo} from '../../../../src/lib/repo/address.js'
import {signatureState} from '../../../../src/lib/repo/authenticity.js'
import {copyBackups, type CopyOptions} from '../../../../src/lib/repo/copy.js'
import {acquireLock} from '../../../../src/lib/repo/lock.js'
import {openRepository} from '../../../../src/lib/repo/repository.js'
import {newVerifyContext, verifyFlow, verifyResult} from '../../../../src/lib/restore/verify.js'
import {loadDecryptOptions} from '../../../../src/lib/secrets.js'
import {runFlow} from '../../../../src/lib/steps.js'
import {optionsFor, signedWriter, takeBackup} from '../../../helpers/backup.js'
import {tempDir} from '../../../helpers/cli.js'
import {makeSmallDataDir} from '../../../helpers/fixtures.js'

let tmp: {cleanup: () => Promise<void>; path: string}
/** full ← incremental, then another full ← incremental: signed, encrypted; never written to */
let source: string
let records: BackupRecord[]
let readerKey: string
let n = 0

beforeAll(async () => {
  tmp = await tempDir('moctl-br-copy-')
  const dataDir = join(tmp.path, 'mo-data')
  await makeSmallDataDir(dataDir)
  const writer = await signedWriter(tmp.path)
  readerKey = writer.readerKey
  source = join(tmp.path, 'source')
  records = []
  for (const type of ['full', 'incremental', 'full', 'incremental'] as const) {
    if (type === 'incremental') await writeFile(join(dataDir, 'shared', `new-object-${records.length}`), 'new rows')
    records.push(await takeBackup(optionsFor(dataDir, source, {...writer.write, type})))
  }
})
afterAll(async () => tmp?.cleanup())

/** A new location under the test's temp dir. */
const fresh = (name: string) => join(tmp.path, `${name}-${++n}`)
const copy = (over: Partial<CopyOptions> & Pick<CopyOptions, 'to'>) => copyBackups({from: source, ...over})
const ids = () => records.map((r) => r.id)
const listed = async (repo: string) => (await (await openRepository(repo)).listBackups()).map((r) => r.id)
const failure = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected a failure')
    },
    (error: unknown) => error,
  )

/** A copy of the source repository to damage. */
async function sourceCopy(): Promise<string> {
  const path = fresh('source-copy')
  await cp(source, path, {recursive: true})
  return path
}

async function verifyIn(repo: string, id: string) {
  const keys = await loadDecryptOptions({env: {}, identityFiles: [readerKey]})
  const ctx = newVerifyContext({
    decrypt: keys,
    id,
    quick: false,
    repo: localRepo(repo),
    trust: {allowUnencrypted: false, allowUnsigned: false, signers: keys.signers},
  })
  return verifyResult(await runFlow(verifyFlow(), ctx))
}

describe('copyBackups', () => {
  it('copies a backup with its chain, oldest first, records verbatim; the target verifies with the reader key', async () => {
    const [full2, inc2] = ids().slice(2)
    const to = fresh('target')
    const lines: string[] = []
    const progress: number[] = []
    const result = await copy({
      ids: ['latest'],
      onOutput: (l) => lines.push(l),
      onProgress: (p) => progress.push(p.bytesDone / p.bytesTotal),
      to,
    })
    expect(result.copied.map((c) => [c.id, c.type])).toEqual([
      [full2, 'full'],
      [inc2, 'incremental'],
    ])
    expect(result).toMatchObject({failed: [], from: source, skipped: [], to})
    expect(result.bytes).toBe(result.copied.reduce((s, c) => s + c.bytes, 0))
    expect(lines).toEqual([
      expect.stringMatching(`^copied ${full2} \\(full, `),
      expect.stringMatching(`^copied ${inc2}`),
    ])
    expect(progress.at(-1)).toBe(1)
    expect(await listed(to)).toEqual([full2, inc2])
    for (const id of [full2, inc2]) {
      for (const file of ['backup.json', 'data.tar.zst.age', 'manifest.age'])
        // Buffer.equals: vitest's toEqual walks a megabyte byte by byte for seconds.
        expect(
          (await readFile(join(to, 'backups', id, file))).equals(await readFile(join(source, 'backups', id, file))),
        ).toBe(true)
    }

    const record = (await openRepository(to)).getBackup(inc2)
    expect(signatureState(await record)).toBe('valid')
    expect(await verifyIn(to, inc2)).toMatchObject({chain: [full2, inc2], checked: 'every file', id: inc2, ok: true})
    // Again: both are there with the same records, skipped, nothing written.
    const again = await copy({ids: [inc2], onOutput: (l) => lines.push(l), to})
    expect(again).toMatchObject({bytes: 0, copied: [], failed: [], skipped: [full2, inc2]})
    expect(lines.slice(-3)).toEqual([
      `skipped ${full2}: already in ${to}`,
      `skipped ${inc2}: already in ${to}`,
      `nothing to copy: ${to} has every backup asked for`,
    ])
  })

  it('latest past a newer backup whose record does not read: copies the one before it, and says so', async () => {
    const from = await sourceCopy()
    const newest = ids().at(-1)!
    await writeFile(join(from, 'backups', newest, 'backup.json'), '{')
    const warnings: string[] = []
    const to = fresh('target-past-damaged')
    const result = await copyBackups({from, ids: ['latest'], onWarning: (w) => warnings.push(w), to})
    expect(result.copied.map((c) => c.id).at(-1)).toBe(ids().at(-2))
    expect(warnings).toEqual([
      expect.stringMatching(
        new RegExp(`^latest is ${ids().at(-2)}, but a newer backup could not be read: backup ${newest}: `),
      ),
    ])
  })

  it('--all copies every backup the target lacks, and only those', async () => {
    const [full1, inc1, full2, inc2] = ids()
    const to = fresh('target')
    await copy({ids: [full2], to})
    const result = await copy({all: true, to})
    expect(result.copied.map((c) => c.id)).toEqual([full1, inc1, inc2])
    expect(result.skipped).toEqual([full2])
    expect(await listed(to)).toEqual(ids())
    expect(await verifyIn(to, inc1)).toMatchObject({chain: [full1, inc1], ok: true})
  })

  it('a source with no backup and --all: nothing to copy, and the target is not created', async () => {
    const empty = fresh('empty')
    await openRepository(empty, {create: true})
    const to = fresh('target')
    const lines: string[] = []
    const result = await copyBackups({all: true, from: empty, onOutput: (l) => lines.push(l), to})
    expect(result).toMatchObject({copied: [], failed: [], skipped: []})
    expect(lines).toEqual([`nothing to copy: ${empty} has no complete backup`])
    expect(await readdir(tmp.path)).not.toContain(to.split('/').pop())
  })

  it('an object that does not match its record: exit 3 naming backup and object, nothing of it left in the target', async () => {
    const [full1, inc1] = ids()
    const from = await sourceCopy()
    // One byte flipped in the incremental's archive: same size, another SHA-256.
    const handle = await open(join(from, 'backups', inc1, 'data.tar.zst.age'), 'r+')
    const byte = Buffer.alloc(1)
    await handle.read(byte, 0, 1, 500)
    await handle.write(Buffer.from([byte[0] ^ 0xff]), 0, 1, 500)
    await handle.close()
    const to = fresh('target')
    const error = await failure(copyBackups({from, ids: [inc1], to}))
    expect(error).toMatchObject({
      exitCode: 3,
      message: expect.stringMatching(
        new RegExp(
          `^backup ${inc1}: archive data.tar.zst.age in ${from} does not match its record \\(its SHA-256 is [0-9a-f]{16}…, its record says [0-9a-f]{16}…\\): not copied$`,
        ),
      ),
    })
    // The base before it was whole and checked: it stays; of the bad one nothing is left.
    expect(await listed(to)).toEqual([full1])
    expect(await readdir(join(to, 'backups'))).toEqual([full1])
    // --all goes on with the others and names the bad one (and nothing builds on it here).
    const all = await copyBackups({all: true, from, to})
    expect(all.failed).toEqual([{id: inc1, reason: (error as Error).message}])
    expect(all.copied.map((c) => c.id)).toEqual(ids().slice(2))
  })

  it('a backup under the same id with another record in the target: refused (exit 3), never overwritten', async () => {
    const [full1, inc1] = ids()
    const to = fresh('target')
    await copy({ids: [full1], to})
    const recordFile = join(to, 'backups', full1, 'backup.json')
    const edited = JSON.stringify({...JSON.parse(await readFile(recordFile, 'utf8')), durationMs: 1}, null, 2)
    await writeFile(recordFile, edited)
    const error = await failure(copy({ids: [inc1], to}))
    expect(error).toMatchObject({
      exitCode: 3,
      message: `backup ${full1} is already in ${to} with another record: not overwritten`,
    })
    expect(await readFile(recordFile, 'utf8')).toBe(edited)
    expect(await readdir(join(to, 'backups'))).toEqual([full1])
  })

  it("the chain's base missing in the source: exit 3 before anything is written; an unknown id: exit 2", async () => {
    const [full1, inc1] = ids()
    const from = await sourceCopy()
    await rm(join(from, 'backups', full1, 'backup.json'))
    const to = fresh('target')
    expect(await failure(copyBackups({from, ids: [inc1], to}))).toMatchObject({
      exitCode: 3,
      message: `backup ${full1}, which ${inc1} is built on, is missing or incomplete`,
    })
    expect(await listed(to)).toEqual([])
    expect(await failure(copy({ids: ['0193ffff'], to}))).toMatchObject({
      exitCode: 2,
      message: `backup 0193ffff not found in ${source}`,
    })
  })

  it('an interrupted copy leaves nothing listed; what a killed one left is removed and the next copy completes it', async () => {
    const [full1, inc1] = ids()
    const to = fresh('target')
    const abort = new AbortController()
    const error = await failure(
      copy({
        ids: [inc1],
        onProgress(p) {
          if (p.bytesDone > 0) abort.abort()
        },
        signal: abort.signal,
        to,
      }),
    )
    expect(error).toBeInstanceOf(Error)
    expect(await listed(to)).toEqual([])
    expect(await readdir(join(to, 'backups'))).toEqual([])
    // A copy killed (kill -9) midway through inc1: its base whole, inc1's archive whole, its
    // manifest a temp file, no record.
    await copy({ids: [full1], to})
    await mkdir(join(to, 'backups', inc1))
    await cp(join(source, 'backups', inc1, 'data.tar.zst.age'), join(to, 'backups', inc1, 'data.tar.zst.age'))
    await writeFile(join(to, 'backups', inc1, 'manifest.age.tmp-0123456789ab'), 'half')
    expect(await listed(to)).toEqual([full1])
    const result = await copy({ids: [inc1], to})
    expect(result).toMatchObject({copied: [{id: inc1}], skipped: [full1]})
    expect((await readdir(join(to, 'backups', inc1))).sort()).toEqual([
      'backup.json',
      'data.tar.zst.age',
      'manifest.age',
    ])
    expect(await verifyIn(to, inc1)).toMatchObject({ok: true})
  })

  it('refuses a target that is the source, inside it or around it, and a non-empty non-repository (exit 2)', async () => {
    for (const to of [source, join(source, 'offsite'), tmp.path]) {
      expect(await failure(copy({all: true, to}))).toMatchObject({exitCode: 2, message: expect.stringContaining('--')})
    }

    const junk = fresh('junk')
    await mkdir(junk)
    await writeFile(join(junk, 'notes.txt'), 'mine')
    expect(await failure(copy({all: true, to: junk}))).toMatchObject({
      exitCode: 2,
      message: `${junk} is not empty and is not a moctl br repository`,
      suggestions: ['check --to: an existing repository, or an empty or new location to create one in'],
    })
  })

  it("takes the target's writer lock: exit 4 while another writer holds it", async () => {
    const to = fresh('target')
    await openRepository(to, {create: true})
    const unlock = await acquireLock(await openRepository(to), {command: 'br backup'})
    try {
      expect(await failure(copy({ids: ['latest'], to}))).toMatchObject({exitCode: 4})
    } finally {
      await unlock()
    }

    expect(await listed(to)).toEqual([])
  })
})
