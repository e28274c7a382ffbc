import {describe, expect, it} from 'vitest'

import type {BackupRecord} from '../../../../src/lib/repo/types.js'

import {
  authenticate,
  canonicalJson,
  checkManifestBinding,
  recordBinding,
  signatureState,
  signRecord,
} from '../../../../src/lib/repo/authenticity.js'
import {generateSigningKey, parseSigningSecret} from '../../../../src/lib/signing.js'

function record(over: Partial<BackupRecord> = {}): BackupRecord {
  return {
    archive: {compression: 'zstd', file: 'data.tar.zst.age', level: 3, sha256: 'a'.repeat(64), size: 10},
    backupTs: 't',
    base: null,
    chain: ['id1'],
    completedAt: '2026-12-01T00:00:00.000Z',
    counts: {dirs: 1, files: 1, symlinks: 0},
    createdAt: '2026-12-01T00:00:00.000Z',
    durationMs: 1,
    encryption: {passphrase: false, recipients: ['age1x'], type: 'recipients'},
    format: 2,
    id: 'id1',
    manifest: {file: 'manifest.age', plainSha256: 'b'.repeat(64), sha256: 'c'.repeat(64), size: 5},
    mode: 'cold',
    signature: null,
    sizes: {archived: 1, total: 1},
    source: {dataDir: '/d', host: 'h', serverVersion: null},
    tool: {name: 'x', version: '1'},
    type: 'full',
    ...over,
  }
}

const key = parseSigningSecret(generateSigningKey().secret, 'test')
const other = parseSigningSecret(generateSigningKey().secret, 'test')
const policy = {allowUnencrypted: false, allowUnsigned: false, signers: [key.signer]}
const identity = {identities: ['AGE-SECRET-KEY-1X'], passphrases: []}

describe('canonicalJson', () => {
  it('sorts keys at every level, so equal values encode the same', () => {
    expect(canonicalJson({a: {c: null, d: [2, {e: 0, f: 1}]}, b: 1})).toBe(
      '{"a":{"c":null,"d":[2,{"e":0,"f":1}]},"b":1}',
    )
  })
})

describe('signatures', () => {
  it('hold for the record as signed, and for no field changed after', () => {
    const signed = signRecord(record(), key)
    expect(signatureState(signed)).toBe('valid')
    expect(signatureState(record())).toBe('unsigned')
    for (const edit of [
      {chain: ['x', 'id1']},
      {archive: {...signed.archive, sha256: 'd'.repeat(64)}},
      {manifest: {...signed.manifest, sha256: 'e'.repeat(64)}},
      {signature: {...signed.signature!, signer: other.signer}},
    ])
      expect(signatureState({...signed, ...edit} as BackupRecord)).toBe('invalid')
  })

  it('the reader decides: unsigned, foreign or broken signatures are refused when signers are given', () => {
    expect(authenticate(signRecord(record(), key), policy, identity)).toBe('signed')
    expect(() => authenticate(record(), policy, identity)).toThrow(/is not signed/)
    expect(authenticate(record(), {...policy, allowUnsigned: true}, identity)).toBe('none')
    expect(() => authenticate(signRecord(record(), other), policy, identity)).toThrow(/not a trusted signer/)
    const broken = {...signRecord(record(), key), createdAt: '2020-01-01T00:00:00.000Z'}
    expect(() => authenticate(broken, {...policy, signers: []}, null)).toThrow(/signature does not match/)
  })

  it('an unencrypted backup is refused when keys were given, unless allowed', () => {
    const plain = record({encryption: {passphrase: false, recipients: [], type: 'none'}})
    expect(() => authenticate(plain, {...policy, signers: []}, {identities: [], passphrases: ['pw']})).toThrow(
      /stored unencrypted, but keys were given/,
    )
    expect(
      authenticate(plain, {...policy, allowUnencrypted: true, signers: []}, {identities: [], passphrases: ['pw']}),
    ).toBe('none')
    expect(authenticate(plain, {...policy, signers: []}, null)).toBe('none')
  })

  it('a passphrase backup of format 2 is bound by its manifest; format 1 is not', () => {
    const pass = record({encryption: {passphrase: true, recipients: [], type: 'passphrase'}})
    const keys = {identities: [], passphrases: ['pw']}
    expect(authenticate(pass, {...policy, signers: []}, keys)).toBe('bound')
    expect(authenticate({...pass, format: 1}, {...policy, signers: []}, keys)).toBe('none')
  })
})

const manifest = (r: BackupRecord) => ({
  backupId: r.id,
  chain: r.chain,
  createdAt: r.createdAt,
  deleted: [],
  entries: [],
  format: 1 as const,
  record: recordBinding(r),
  type: r.type,
})

describe('the manifest binds its record', () => {
  it('any field but manifest and signature changed is caught; those two are not part of the binding', () => {
    const r = record()
    const m = manifest(r)
    expect(() => checkManifestBinding(r, m)).not.toThrow()
    expect(() => checkManifestBinding({...r, manifest: {...r.manifest, size: 99}}, m)).not.toThrow()
    expect(() => checkManifestBinding({...r, durationMs: 2}, m)).toThrow(/changed after the backup was written/)
    expect(() => checkManifestBinding({...r, durationMs: 2, format: 1}, {...m, record: undefined})).not.toThrow()
    // relabelling the record format 1 does not escape the binding its manifest carries
    expect(() => checkManifestBinding({...r, durationMs: 2, format: 1}, m)).toThrow(/changed after/)
    expect(() => checkManifestBinding({...r, format: 1}, m)).toThrow(/changed after/)
  })

  it("the record's chain and type must be the manifest's, whatever the format", () => {
    const r = record({base: 'id0', chain: ['id0', 'id1'], format: 1, type: 'incremental'})
    const m = {...manifest(r), record: undefined}
    expect(() => checkManifestBinding(r, m)).not.toThrow()
    expect(() => checkManifestBinding({...r, base: null, chain: ['id1'], type: 'full'}, m)).toThrow(
      /its manifest incremental/,
    )
  })
})
