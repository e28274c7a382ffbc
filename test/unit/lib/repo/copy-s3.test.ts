/**
 * copyBackups between a local repository and an S3 one, on a real S3-protocol server (s3rver on
 * loopback, test/helpers/s3.ts, behind its recording proxy): a signed, encrypted chain copied
 * filesystem → S3 → a new filesystem repository, where the reader key verifies every file and
 * every object is the original's byte for byte. s3rver ignores Object Lock: that the copy's
 * writes ask for it (--object-lock-days) is checked on the requests it sent.
 */
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {BackupRecord} from '../../../../src/lib/repo/types.js'

import {localRepo, type RepoAddress} from '../../../../src/lib/repo/address.js'
import {copyBackups} from '../../../../src/lib/repo/copy.js'
import {openRepository} from '../../../../src/lib/repo/repository.js'
import {newVerifyContext, verifyFlow, verifyResult} from '../../../../src/lib/restore/verify.js'
import {loadDecryptOptions} from '../../../../src/lib/secrets.js'
import {runFlow} from '../../../../src/lib/steps.js'
import {optionsFor, signedWriter, takeBackup} from '../../../helpers/backup.js'
import {tempDir} from '../../../helpers/cli.js'
import {makeSmallDataDir} from '../../../helpers/fixtures.js'
import {type S3Server, startS3} from '../../../helpers/s3.js'

let tmp: {cleanup: () => Promise<void>; path: string}
let s3: S3Server
let source: string
let records: BackupRecord[]
let readerKey: string

beforeAll(async () => {
  tmp = await tempDir('moctl-br-copy-s3-')
  s3 = await startS3({recorder: true})

  const dataDir = join(tmp.path, 'mo-data')
  await makeSmallDataDir(dataDir)
  const writer = await signedWriter(tmp.path)
  readerKey = writer.readerKey
  source = join(tmp.path, 'source')
  records = []
  for (const type of ['full', 'incremental'] as const) {
    if (type === 'incremental') await writeFile(join(dataDir, 'shared', 'new-object'), 'new rows')
    records.push(await takeBackup(optionsFor(dataDir, source, {...writer.write, type})))
  }
}, 60_000)
afterAll(async () => {
  await s3?.stop()
  await tmp?.cleanup()
})

async function verifyIn(repo: RepoAddress, id: string, quick: boolean) {
  const keys = await loadDecryptOptions({env: {}, identityFiles: [readerKey]})
  const ctx = newVerifyContext({
    decrypt: keys,
    id,
    quick,
    repo,
    trust: {allowUnencrypted: false, allowUnsigned: false, signers: keys.signers},
  })
  return verifyResult(await runFlow(verifyFlow(), ctx))
}

describe('copy filesystem → S3 → filesystem', () => {
  it('copies the chain into the bucket under Object Lock and back out; the copy verifies with the reader key', async () => {
    const [full, inc] = records.map((r) => r.id)
    const bucket: RepoAddress = {
      location: s3.url('offsite/mo'),
      s3: {...s3.settings('offsite/mo'), objectLock: {days: 1, mode: 'GOVERNANCE'}},
    }
    s3.requests.length = 0
    const up = await copyBackups({from: source, ids: ['latest'], to: bucket})
    expect(up.copied.map((c) => c.id)).toEqual([full, inc])
    // Every object of the backups was written asking for retention (s3rver itself ignores it).
    const writes = s3.requests.filter(
      (r) => (r.method === 'PUT' || r.method === 'POST') && r.path.includes('/backups/'),
    )
    const keys = new Set(writes.map((w) => w.path.replace(/^.*\/backups\//, '')))
    expect([...keys].sort()).toEqual(
      [full, inc].flatMap((id) => ['backup.json', 'data.tar.zst.age', 'manifest.age'].map((f) => `${id}/${f}`)).sort(),
    )
    for (const w of writes.filter((r) => !r.query.has('partNumber') && !r.query.has('uploadId')))
      expect(w.headers['x-amz-object-lock-mode'], `${w.method} ${w.path}`).toBe('GOVERNANCE')
    expect(await verifyIn(bucket, inc, true)).toMatchObject({chain: [full, inc], ok: true})

    // Again: nothing to copy, nothing written.
    expect(await copyBackups({all: true, from: source, to: bucket})).toMatchObject({copied: [], skipped: [full, inc]})

    const back = join(tmp.path, 'restored-repo')
    const down = await copyBackups({
      all: true,
      from: {location: bucket.location, s3: s3.settings('offsite/mo')},
      to: back,
    })
    expect(down.copied.map((c) => c.id)).toEqual([full, inc])
    expect((await (await openRepository(back)).listBackups()).map((r) => r.id)).toEqual([full, inc])
    for (const id of [full, inc]) {
      for (const file of ['backup.json', 'data.tar.zst.age', 'manifest.age']) {
        const [a, b] = await Promise.all([
          readFile(join(back, 'backups', id, file)),
          readFile(join(source, 'backups', id, file)),
        ])
        expect(a.equals(b), `${id}/${file}`).toBe(true)
      }
    }

    expect(await verifyIn(localRepo(back), inc, false)).toMatchObject({
      chain: [full, inc],
      checked: 'every file',
      ok: true,
    })
  })
})
