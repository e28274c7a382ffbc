/**
 * The golden repositories (test/fixtures/golden, made once by its make.mjs and make-appended.mjs,
 * which say how each was made): every later version of moctl br must read them. Each golden backup verifies and
 * restores to the tree its source had, byte for byte, with its modes and mtimes; each corrupted
 * copy fails with exit 3 and a message naming what is wrong, leaving no target behind; `list
 * --json` gives back the committed records. A change that stops reading record format 1 or 2, the
 * manifests or archives of today fails here.
 *
 * One backup of each record format (format1, and the chain's last incremental, which reads the
 * whole chain) and one corrupted copy go through the CLI's commands (in process, runInProcess),
 * for the exit codes and what is printed; the others run verifyFlow and restoreFlow in process,
 * built as the commands build them (loadDecryptOptions, the same trust, no service), since a
 * CLI run costs its own start and the passphrase golden pays scrypt 2^18 at every decrypt.
 *
 * The fixture folder is copied to a temp dir first: nothing is ever written into test/fixtures.
 */
import {chmod, cp, lstat, readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BrError, ExitCode} from '../../src/lib/errors.js'
import {loadDecryptOptions} from '../../src/lib/secrets.js'
import {ROOT, runInProcess, tempDir} from '../helpers/cli.js'
import {restoreInProcess, verifyInProcess} from '../helpers/read-flows.js'
import {treeHashes} from '../helpers/tree.js'

interface Golden {
  id: string
  keys: 'identity' | 'passphrase' | 'reader'
  repo: string
  version: string
}
interface Expected {
  corrupt: Record<string, Omit<Golden, 'version'> & {what: string}>
  goldens: Record<string, Golden>
  versions: Record<string, {hashes: Record<string, string>; meta: Record<string, {mode: number; mtimeMs: number}>}>
}

const FIXTURE = join(ROOT, 'test', 'fixtures', 'golden')
const expected = JSON.parse(await readFile(join(FIXTURE, 'expected.json'), 'utf8')) as Expected

let tmp: {cleanup: () => Promise<void>; path: string}
let golden: string
const env = (): NodeJS.ProcessEnv => ({XDG_CACHE_HOME: join(tmp.path, 'cache')})

function keyArgs(keys: Golden['keys']): string[] {
  const dir = join(golden, 'keys')
  if (keys === 'passphrase') return ['--passphrase-file', join(dir, 'test-only-passphrase.txt')]
  return ['--identity', join(dir, keys === 'reader' ? 'test-only-reader.key' : 'test-only-identity.key')]
}

const verify = (g: Omit<Golden, 'version'>) =>
  runInProcess(['br', 'verify', g.id, '--path', join(golden, g.repo), ...keyArgs(g.keys), '--quiet'], {env: env()})

const restore = (g: Omit<Golden, 'version'>, target: string) =>
  runInProcess(
    [
      'br',
      'restore',
      g.id,
      '--path',
      join(golden, g.repo),
      ...keyArgs(g.keys),
      '--data-dir',
      target,
      '--service',
      'none',
      '--port',
      '1',
      '--quiet',
    ],
    {env: env()},
  )

/** The key options as `verify`/`restore` build them from keyArgs' flags. */
async function keysOf(keys: Golden['keys']) {
  const dir = join(golden, 'keys')
  return loadDecryptOptions({
    env: {},
    identityFiles:
      keys === 'passphrase'
        ? undefined
        : [join(dir, keys === 'reader' ? 'test-only-reader.key' : 'test-only-identity.key')],
    passphraseFile: keys === 'passphrase' ? join(dir, 'test-only-passphrase.txt') : undefined,
  })
}

/** verifyFlow then restoreFlow in process, as the commands run them; a BrError is returned, not thrown. */
async function inProcess(
  g: Omit<Golden, 'version'>,
  target: string,
): Promise<{restore?: BrError; verify?: BrError; warnings: string[]}> {
  const decrypt = await keysOf(g.keys)
  const trust = {allowUnencrypted: false, allowUnsigned: false, signers: decrypt.signers}
  const warnings: string[] = []
  const onWarning = (message: string) => warnings.push(message)
  const repoPath = join(golden, g.repo)
  const caught = async (run: () => Promise<unknown>): Promise<BrError | undefined> => {
    try {
      await run()
      return undefined
    } catch (error) {
      expect(error).toBeInstanceOf(BrError)
      return error as BrError
    }
  }

  const reader = {decrypt, onWarning, trust}
  const verify = await caught(() => verifyInProcess(repoPath, g.id, reader))
  const restore = await caught(() => restoreInProcess(repoPath, g.id, target, reader))
  return {restore, verify, warnings}
}

/** The restored tree is the version's, hashes, modes and mtimes. */
async function expectRestored(name: string, g: Golden, target: string): Promise<void> {
  const want = expected.versions[g.version]
  const got = await treeHashes(target)
  expect(got).toEqual(want.hashes)
  const meta: Record<string, unknown> = {...want.meta}
  const gotMeta = await metaOf(target, want.hashes)
  if (name === 'format1') {
    // Made before the data dir's own metadata was recorded: it is the staging dir's 0700, as before.
    expect(gotMeta['']).toMatchObject({mode: 0o700})
    delete meta['']
    delete gotMeta['']
  }

  expect(gotMeta).toEqual(meta)
}

/** Modes and mtimes as make.mjs recorded them: the data dir itself is '', directories end in '/'. */
async function metaOf(root: string, hashes: Record<string, string>): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {}
  for (const key of ['', ...Object.keys(hashes)]) {
    if (hashes[key]?.startsWith('-> ')) continue

    const info = await lstat(join(root, key))
    out[key] = {mode: info.mode & 0o7777, mtimeMs: info.mtimeMs}
  }

  return out
}

beforeAll(async () => {
  tmp = await tempDir('moctl-br-golden-')
  golden = join(tmp.path, 'golden')
  await cp(FIXTURE, golden, {recursive: true})
  // git keeps 0644; the key files are refused unless private.
  for (const name of await readdir(join(golden, 'keys'))) await chmod(join(golden, 'keys', name), 0o600)
})

afterAll(async () => {
  await tmp?.cleanup()
})

describe('the golden fixtures are what make.mjs says', () => {
  it('hold a format-1 unsigned record, format-2 records, a signed one and a default-work-factor passphrase one', async () => {
    const record = async (name: string) =>
      JSON.parse(
        await readFile(
          join(golden, expected.goldens[name].repo, 'backups', expected.goldens[name].id, 'backup.json'),
          'utf8',
        ),
      )
    expect(await record('format1')).toMatchObject({format: 1})
    expect(await record('format1')).not.toHaveProperty('signature')
    expect(await record('full')).toMatchObject({format: 2, signature: null})
    expect((await record('signed')).signature).toMatchObject({alg: 'ed25519'})
    expect(await record('chain-incremental-2')).toMatchObject({
      chain: [
        expected.goldens['chain-full'].id,
        expected.goldens['chain-incremental-1'].id,
        expected.goldens['chain-incremental-2'].id,
      ],
      type: 'incremental',
    })
    // appended/ (make-appended.mjs): manifest format 2, a WAL assembled from the parts of a chain of three.
    expect(await record('appended-incremental-2')).toMatchObject({
      chain: ['appended-full', 'appended-incremental-1', 'appended-incremental-2'].map((n) => expected.goldens[n].id),
      format: 2,
      type: 'incremental',
    })
    const pass = expected.goldens.passphrase
    const header = await readFile(join(golden, pass.repo, 'backups', pass.id, 'data.tar.zst.age'), 'latin1')
    // age's scrypt stanza names its work factor; 18 is the default, never weakened for a golden.
    expect(header.split('\n')[1]).toMatch(/^-> scrypt \S+ 18$/)
  })

  it('are small', async () => {
    const du = async (dir: string): Promise<number> => {
      let n = 0
      for (const e of await readdir(dir, {withFileTypes: true})) {
        n += e.isDirectory() ? await du(join(dir, e.name)) : (await lstat(join(dir, e.name))).size
      }

      return n
    }

    expect(await du(FIXTURE)).toBeLessThan(512 * 1024)
  })
})

/** The goldens run through the commands: one of each record format; the chain's last reads the whole chain. */
const THROUGH_CLI = new Set(['chain-incremental-2', 'format1'])

describe('every golden backup verifies and restores byte for byte', () => {
  for (const [name, g] of Object.entries(expected.goldens)) {
    if (!THROUGH_CLI.has(name)) continue
    it(`${name} (${g.repo}, ${g.version}) through the CLI`, async () => {
      const v = await verify(g)
      expect(v.code, v.stderr).toBe(0)
      const target = join(tmp.path, 'restored', name)
      const r = await restore(g, target)
      expect(r.code, r.stderr).toBe(0)
      // Signed and passphrase backups are authenticated and say nothing; the others say so, and nothing else.
      if (g.keys === 'identity') expect(r.stderr).toMatch(/^Warning: authenticity not checked for [^\n]+\n$/)
      else expect(r.stderr + v.stderr).toBe('')
      await expectRestored(name, g, target)
    })
  }

  for (const [name, g] of Object.entries(expected.goldens)) {
    if (THROUGH_CLI.has(name)) continue
    it(`${name} (${g.repo}, ${g.version}) in process`, async () => {
      const target = join(tmp.path, 'restored', name)
      const out = await inProcess(g, target)
      expect(out.verify).toBeUndefined()
      expect(out.restore).toBeUndefined()
      // Signed and passphrase backups are authenticated and say nothing; the others say so, once a flow.
      if (g.keys === 'identity') {
        expect(out.warnings).toHaveLength(2)
        for (const w of out.warnings) expect(w).toMatch(/^authenticity not checked for [^\n]+$/)
      } else expect(out.warnings).toEqual([])
      await expectRestored(name, g, target)
    })
  }
})

describe('list --json gives back the committed records', () => {
  for (const repo of new Set(Object.values(expected.goldens).map((g) => g.repo))) {
    it(repo, async () => {
      const r = await runInProcess(['br', 'list', '--path', join(golden, repo), '--json'], {env: env()})
      expect(r.code, r.stderr).toBe(0)
      const ids = (await readdir(join(golden, repo, 'backups'))).sort()
      const records = await Promise.all(
        ids.map(async (id) => JSON.parse(await readFile(join(golden, repo, 'backups', id, 'backup.json'), 'utf8'))),
      )
      expect(JSON.parse(r.stdout)).toEqual(records)
    })
  }
})

describe('every corrupted copy fails with exit 3, naming what is wrong', () => {
  const messages: Record<string, RegExp> = {
    'edited-manifest': /backup \S+: the manifest inside the archive differs from manifest\.age/,
    'edited-record': /backup \S+: backup\.json was changed after the backup was written/,
    'flipped-archive': /backup \S+: archive does not match the SHA-256 in its record/,
    'truncated-archive': /backup \S+: archive data\.tar\.zst\.age is \d+ bytes, its record says \d+/,
  }

  it('covers every corrupted copy', () => {
    expect(Object.keys(expected.corrupt).sort()).toEqual(Object.keys(messages).sort())
  })

  it('flipped-archive through the CLI: exit 3, the message, no target', async () => {
    const c = expected.corrupt['flipped-archive']
    const v = await verify(c)
    expect(v.code, v.stderr).toBe(3)
    expect(v.stderr).toMatch(messages['flipped-archive'])
    expect(v.stderr).toContain(c.id)

    const parent = join(tmp.path, 'corrupt-restore-cli')
    const r = await restore(c, join(parent, 'mo-data'))
    expect(r.code, r.stderr).toBe(3)
    expect(r.stderr).toMatch(messages['flipped-archive'])
    expect(await readdir(parent).catch(() => [])).toEqual([])
  })

  for (const [name, c] of Object.entries(expected.corrupt)) {
    it(`${name}: ${c.what}`, async () => {
      const parent = join(tmp.path, 'corrupt-restore', name)
      const out = await inProcess(c, join(parent, 'mo-data'))
      for (const error of [out.verify, out.restore]) {
        expect(error?.exitCode).toBe(ExitCode.integrity)
        expect(error?.message).toMatch(messages[name])
        expect(error?.message).toContain(c.id)
      }

      // Refused before or while extracting: no target, no staging left beside it.
      expect(await readdir(parent).catch(() => [])).toEqual([])
    })
  }
})
