/**
 * What someone who can write the repository can and cannot get past verify, restore, prune and
 * delete (README "Threat model"), with the CLI's commands on real files:
 * - backups forged with only the public key (it is in backup.json), added or put in place of
 *   ours, unsigned or signed with the attacker's own key, or keeping our signature;
 * - a passphrase repository downgraded to an unencrypted backup, and a passphrase record edited;
 * - a record's chain edited (a member dropped, an incremental relabelled full): verify refuses,
 *   restore refuses before touching the target, prune keeps what is still needed;
 * - a missing or changed manifest.age, caught by verify --quick too;
 * - a damaged backup.json: listed as damaged, skipped by prune, removable by delete.
 * Every verify, restore, prune, delete and list is a CLI run; the backups they read are CLI runs
 * only where taking them is the point (signing, the unsigned warning, keys from the config): the
 * forgeries and the repositories the readers are tested on are made by the backup flow in process.
 * The CLI runs are runInProcess (test/helpers/cli.ts): what is tested is what each command
 * decides, prints and exits with, not that it is a process (cli.test.ts runs those).
 */
import {cp, mkdir, readdir, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {EncryptOptions} from '../../src/lib/archive/types.js'
import type {SigningKey} from '../../src/lib/signing.js'

import {generateKeyPair} from '../../src/lib/keys.js'
import {localRepo} from '../../src/lib/repo/address.js'
import {NO_TRUST} from '../../src/lib/repo/authenticity.js'
import {ManifestCache} from '../../src/lib/repo/manifest-cache.js'
import {newVerifyContext, verifyFlow} from '../../src/lib/restore/verify.js'
import {loadDecryptOptions, loadEncryptOptions} from '../../src/lib/secrets.js'
import {runFlow} from '../../src/lib/steps.js'
import {backupArgs, NO_SQL, restoreArgs} from '../helpers/args.js'
import {optionsFor, takeBackup} from '../helpers/backup.js'
import {runInProcess, tempDir} from '../helpers/cli.js'
import {makeSmallDataDir, randomPassphrase} from '../helpers/fixtures.js'
import {treeHashes} from '../helpers/tree.js'

/** scrypt 2^10 for the backups taken in process: the readers' cost is not what is tested here */
const FAST_SCRYPT_LOG_N = 10

let tmp: {cleanup: () => Promise<void>; path: string}
let dataDir: string
let writerKey: string
let readerKey: string
/** the reader key's age identity alone: decrypts, trusts no signer */
let plainIdentity: string
let recipient: string
/** the backup host: its manifest cache */
const hostEnv = (): NodeJS.ProcessEnv => ({XDG_CACHE_HOME: join(tmp.path, 'host-cache')})
/** the attacker: another cache, no keys but the public one */
const attackerEnv = (): NodeJS.ProcessEnv => ({XDG_CACHE_HOME: join(tmp.path, 'attacker-cache')})

type Rec = Record<string, unknown> & {chain: string[]; id: string}

async function backupCli(repo: string, dir: string, keyArgs: string[], ...more: [NodeJS.ProcessEnv, ...string[]]) {
  const [env, ...extra] = more
  const r = await runInProcess(backupArgs(repo, dir, ...keyArgs, ...NO_SQL, '--json', ...extra), {env})
  expect(r.code, r.stderr + r.stdout).toBe(0)
  return JSON.parse(r.stdout) as Rec
}

/**
 * A backup by the host's writer key, signed and cached as `br backup --writer-key` makes it, but
 * in process (the flow the command runs, with the host's manifest cache): for the tests whose
 * point is what readers, prune and delete do with it. The CLI's own backups are taken above.
 */
async function hostBackup(repo: string, type: 'full' | 'incremental'): Promise<Rec> {
  const keys = await loadEncryptOptions({env: {}, writerKeyFile: writerKey})
  // oclif's cache dir is $XDG_CACHE_HOME/moctl; the commands keep manifests under it
  const cache = new ManifestCache(join(hostEnv().XDG_CACHE_HOME!, 'moctl', 'manifests'))
  return (await takeBackup(optionsFor(dataDir, repo, {...keys, cache, type}))) as unknown as Rec
}

/**
 * What an attacker who can write the repository adds to it: a backup made by the backup flow in
 * process (no CLI run: how the forgery was made is not the point, what readers do with it is).
 */
async function attackerBackup(
  repo: string,
  dir: string,
  encrypt: EncryptOptions,
  signing: null | SigningKey = null,
): Promise<Rec> {
  return (await takeBackup(optionsFor(dir, repo, {encrypt, signing}))) as unknown as Rec
}

const recordFile = (repo: string, id: string) => join(repo, 'backups', id, 'backup.json')
const readRecord = async (repo: string, id: string): Promise<Rec> =>
  JSON.parse(await readFile(recordFile(repo, id), 'utf8'))
async function editRecord(repo: string, id: string, edit: (r: Rec) => void): Promise<() => Promise<void>> {
  const before = await readFile(recordFile(repo, id))
  const r = JSON.parse(before.toString('utf8'))
  edit(r)
  await writeFile(recordFile(repo, id), JSON.stringify(r, null, 2))
  return () => writeFile(recordFile(repo, id), before)
}

/** oclif wraps warnings at the terminal width: one line again. */
const flat = (stderr: string) => stderr.replaceAll(/ *\n\s*›\s*/g, ' ')

const verify = (repo: string, id: string, ...extra: string[]) =>
  runInProcess(['br', 'verify', id, '--path', repo, ...extra], {env: hostEnv()})

beforeAll(async () => {
  tmp = await tempDir('moctl-br-trust-')
  dataDir = join(tmp.path, 'mo-data')
  await makeSmallDataDir(dataDir)
  writerKey = join(tmp.path, 'host', 'writer.key')
  readerKey = join(tmp.path, 'vault', 'reader.key')
  const keys = await runInProcess([
    'br',
    'key',
    'generate',
    '--writer-key',
    writerKey,
    '--reader-key',
    readerKey,
    '--json',
  ])
  expect(keys.code, keys.stderr).toBe(0)
  recipient = JSON.parse(keys.stdout).recipient
  plainIdentity = join(tmp.path, 'plain.key')
  const identityLine = (await readFile(readerKey, 'utf8')).split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1'))!
  await writeFile(plainIdentity, `${identityLine}\n`, {mode: 0o600})
})

afterAll(async () => {
  await tmp?.cleanup()
})

describe('key generate', () => {
  it('writes a writer key that cannot read and a reader key that cannot sign, into a new 0700 directory', async () => {
    expect((await stat(join(tmp.path, 'host'))).mode & 0o777).toBe(0o700)
    const writer = await readFile(writerKey, 'utf8')
    const reader = await readFile(readerKey, 'utf8')
    expect(writer).toContain(recipient)
    expect(writer).not.toContain('AGE-SECRET-KEY-1')
    expect(writer).toMatch(/^BRSIG-SECRET-KEY-1[0-9A-F]{64}$/m)
    expect(reader).toMatch(/^AGE-SECRET-KEY-1/m)
    expect(reader).toMatch(/^brsig1[0-9a-f]{64}$/m)
    expect(reader).not.toContain('BRSIG-SECRET')
    const again = await runInProcess([
      'br',
      'key',
      'generate',
      '--writer-key',
      writerKey,
      '--reader-key',
      join(tmp.path, 'x'),
    ])
    expect(again.code).toBe(2)
    expect(flat(again.stderr)).toContain('already exists')
    await expect(stat(join(tmp.path, 'x'))).rejects.toThrow()
  })
})

describe('a backup must prove who wrote it', () => {
  let repo: string
  let ours: Rec

  beforeAll(async () => {
    repo = join(tmp.path, 'signed-repo')
    ours = await backupCli(repo, dataDir, ['--writer-key', writerKey], hostEnv())
  })

  it('a signed backup verifies and restores with the reader key, with no warning', async () => {
    expect(ours.signature).toMatchObject({alg: 'ed25519'})
    const r = await verify(repo, ours.id, '--identity', readerKey)
    expect(r.code, r.stderr).toBe(0)
    expect(flat(r.stderr)).not.toMatch(/authenticity not checked/)
    const target = join(tmp.path, 'restore-ours', 'mo-data')
    const restored = await runInProcess(restoreArgs(ours.id, repo, target, '--identity', readerKey, ...NO_SQL), {
      env: hostEnv(),
    })
    expect(restored.code, restored.stderr).toBe(0)
    const source = Object.entries(await treeHashes(dataDir)).filter(([k]) => !k.startsWith('shared-cache'))
    expect(await treeHashes(target)).toEqual(Object.fromEntries(source))
  })

  it('a backup added with only the public key is refused by verify and restore (exit 3), and restore touches nothing', async () => {
    const evil = join(tmp.path, 'evil-data')
    await makeSmallDataDir(evil, {seed: 66})
    const published = (await readRecord(repo, ours.id)).encryption as {recipients: string[]}
    const forged = await attackerBackup(repo, evil, {recipients: published.recipients, type: 'recipients'})
    for (const keys of [
      ['--identity', readerKey],
      ['--quick', '--identity', readerKey],
    ]) {
      const r = await verify(repo, forged.id, ...keys)
      expect(r.code, r.stderr).toBe(3)
      expect(flat(r.stderr)).toContain(`backup ${forged.id} is not signed`)
    }

    const target = join(tmp.path, 'restore-forged', 'mo-data')
    await mkdir(target, {recursive: true})
    await writeFile(join(target, 'precious'), 'old data')
    const r = await runInProcess(restoreArgs(forged.id, repo, target, '--identity', readerKey, '--force'), {
      env: hostEnv(),
    })
    expect(r.code, r.stderr).toBe(3)
    expect(await readdir(target)).toEqual(['precious'])
    expect(await readdir(join(tmp.path, 'restore-forged'))).toEqual(['mo-data'])
  })

  it("a backup signed with the attacker's own writer key is refused", async () => {
    const theirs = join(tmp.path, 'attacker')
    // made in process by what `br key generate` runs (proven by the CLI above): no CLI run
    await generateKeyPair(join(theirs, 'w'), join(theirs, 'r'))
    const theirKeys = await loadEncryptOptions({env: {}, writerKeyFile: join(theirs, 'w')})
    const forged = await attackerBackup(repo, dataDir, theirKeys.encrypt, theirKeys.signing)
    const r = await verify(repo, forged.id, '--identity', readerKey)
    expect(r.code, r.stderr).toBe(3)
    expect(flat(r.stderr)).toMatch(/is signed by brsig1[0-9a-f]{64}, which is not a trusted signer/)
  })

  it('our backup with its objects and record replaced, keeping our signature, is refused', async () => {
    const evil = join(tmp.path, 'evil-data-2')
    await makeSmallDataDir(evil, {seed: 67})
    const scratch = join(tmp.path, 'attacker-repo')
    const forged = await attackerBackup(scratch, evil, {recipients: [recipient], type: 'recipients'})
    const victim = join(tmp.path, 'victim-repo')
    await cp(repo, victim, {recursive: true})
    const mine = await readRecord(victim, ours.id)
    for (const f of ['data.tar.zst.age', 'manifest.age'])
      await cp(join(scratch, 'backups', forged.id, f), join(victim, 'backups', ours.id, f))
    // The attacker's record, renamed to ours, first with our signature, then with none.
    const swapped = {...forged, chain: [ours.id], id: ours.id, signature: mine.signature}
    await writeFile(recordFile(victim, ours.id), JSON.stringify(swapped))
    let r = await verify(victim, ours.id, '--identity', readerKey)
    expect(r.code, r.stderr).toBe(3)
    expect(flat(r.stderr)).toContain('its signature does not match its backup.json')
    await writeFile(recordFile(victim, ours.id), JSON.stringify({...swapped, signature: null}))
    r = await verify(victim, ours.id, '--identity', readerKey)
    expect(r.code, r.stderr).toBe(3)
    expect(flat(r.stderr)).toContain('is not signed')
    // With only the age identity (no signer), the swap still fails on the manifest (it names another backup).
    r = await verify(victim, ours.id, '--identity', plainIdentity)
    expect(r.code, r.stderr).toBe(3)
  })

  it('without a trusted signer, every run says that authenticity was not checked', async () => {
    const r = await verify(repo, ours.id, '--identity', plainIdentity)
    expect(r.code, r.stderr).toBe(0)
    expect(flat(r.stderr), flat(r.stderr)).toMatch(/authenticity not checked for .*signed by brsig1/)
    const quick = await verify(repo, ours.id, '--quick')
    expect(quick.code, quick.stderr).toBe(0)
    expect(flat(quick.stderr)).toMatch(/authenticity not checked/)
    // --trusted-signer alone suffices for --quick, on a host with no key at all.
    const signer = (await readFile(readerKey, 'utf8')).split('\n').find((l) => l.startsWith('brsig1'))!
    const trusted = await verify(repo, ours.id, '--quick', '--trusted-signer', signer)
    expect(trusted.code, trusted.stderr).toBe(0)
    expect(flat(trusted.stderr)).not.toMatch(/authenticity not checked/)
  })

  it('an unsigned backup warns when taken, and is accepted by a signing reader only with --allow-unsigned', async () => {
    const repo2 = join(tmp.path, 'unsigned-repo')
    const r = await runInProcess(backupArgs(repo2, dataDir, '--recipient', recipient, ...NO_SQL, '--json'), {
      env: hostEnv(),
    })
    expect(r.code, r.stderr).toBe(0)
    expect(flat(r.stderr)).toContain('this backup is not signed')
    const {id} = JSON.parse(r.stdout)
    expect((await verify(repo2, id, '--identity', readerKey)).code).toBe(3)
    const allowed = await verify(repo2, id, '--identity', readerKey, '--allow-unsigned')
    expect(allowed.code, allowed.stderr).toBe(0)
    expect(flat(allowed.stderr)).toMatch(/authenticity not checked/)
  })
})

describe('a passphrase repository: no downgrade, no edited record', () => {
  let repo: string
  let passFile: string
  let ours: Rec

  beforeAll(async () => {
    repo = join(tmp.path, 'pass-repo')
    passFile = join(tmp.path, 'pass')
    const passphrase = randomPassphrase()
    await writeFile(passFile, `${passphrase}\n`, {mode: 0o600})
    // Taken in process at a low scrypt work factor (the CLI always writes 2^18): readers take the
    // factor from the header, so each verify below costs no full scrypt. What is tested is the
    // reading side; a passphrase backup by the CLI is taken in the 'keys from br config' test.
    const encrypt = {passphrase, scryptLogN: FAST_SCRYPT_LOG_N, type: 'passphrase'} as const
    ours = (await takeBackup(optionsFor(dataDir, repo, {encrypt}))) as unknown as Rec
  })

  it('our passphrase backup verifies without an authenticity warning: the passphrase binds the record', async () => {
    const r = await verify(repo, ours.id, '--passphrase-file', passFile)
    expect(r.code, r.stderr).toBe(0)
    expect(flat(r.stderr)).not.toMatch(/authenticity not checked/)
  })

  it('a plaintext backup put into the repository is refused when a passphrase is given, unless --allow-unencrypted', async () => {
    const evil = join(tmp.path, 'evil-plain')
    await makeSmallDataDir(evil, {seed: 68})
    const forged = await attackerBackup(repo, evil, {type: 'none'})
    const r = await verify(repo, forged.id, '--passphrase-file', passFile)
    expect(r.code, r.stderr).toBe(3)
    expect(flat(r.stderr)).toContain('is stored unencrypted, but keys were given')
    const target = join(tmp.path, 'restore-plain', 'mo-data')
    const restored = await runInProcess(restoreArgs(forged.id, repo, target, '--passphrase-file', passFile), {
      env: hostEnv(),
    })
    expect(restored.code, restored.stderr).toBe(3)
    await expect(stat(target)).rejects.toThrow()
    expect((await verify(repo, forged.id, '--passphrase-file', passFile, '--allow-unencrypted')).code).toBe(0)
  })

  it('our record relabelled unencrypted, or with any field changed, is refused', async () => {
    let undo = await editRecord(repo, ours.id, (r) => {
      ;(r.encryption as Record<string, unknown>).type = 'none'
    })
    let r = await verify(repo, ours.id, '--passphrase-file', passFile)
    expect(r.code, r.stderr).toBe(3)
    await undo()
    undo = await editRecord(repo, ours.id, (r) => {
      ;(r.source as Record<string, unknown>).dataDir = '/elsewhere'
    })
    r = await verify(repo, ours.id, '--passphrase-file', passFile)
    expect(r.code, r.stderr).toBe(3)
    expect(flat(r.stderr)).toContain('backup.json was changed after the backup was written')
    await undo()
    // The other fields through the flow `br verify` runs, in process (no CLI run each): same
    // keys, same trust policy, same error, with the exit code the command would give.
    for (const edit of [
      (r: Rec) => {
        r.createdAt = '2020-01-01T00:00:00.000Z'
      },
      (r: Rec) => {
        r.backupTs = 'yesterday'
      },
      // relabelled as a record of the format before binding, to escape it
      (r: Rec) => {
        r.format = 1
        r.backupTs = 'yesterday'
      },
    ]) {
      undo = await editRecord(repo, ours.id, edit)
      const decrypt = await loadDecryptOptions({env: {}, passphraseFile: passFile})
      const ctx = newVerifyContext({decrypt, id: ours.id, quick: false, repo: localRepo(repo), trust: NO_TRUST})
      await expect(runFlow(verifyFlow(), ctx)).rejects.toMatchObject({
        exitCode: 3,
        message: expect.stringContaining('backup.json was changed after the backup was written'),
      })
      await undo()
    }

    expect((await verify(repo, ours.id, '--passphrase-file', passFile)).code).toBe(0)
  })
})

describe('verify means restorable: chains from what is authenticated', () => {
  let repo: string
  const ids: string[] = []

  beforeAll(async () => {
    repo = join(tmp.path, 'chain-repo')
    ids.push((await hostBackup(repo, 'full')).id)
    for (const f of ['shared/new-1', 'shared/new-2']) {
      await writeFile(join(dataDir, f), `object ${f}\n`.repeat(1000))
      ids.push((await hostBackup(repo, 'incremental')).id)
    }
  })

  it('a chain with a member dropped, or an incremental relabelled full, fails verify and restore (exit 3)', async () => {
    const [a, , c] = ids
    for (const edit of [
      (r: Rec) => Object.assign(r, {base: a, chain: [a, c]}),
      (r: Rec) => Object.assign(r, {base: null, chain: [c], type: 'full'}),
    ]) {
      const undo = await editRecord(repo, c, edit)
      // With only the age identity: no signature check, the manifest still disagrees.
      for (const key of [plainIdentity, readerKey]) {
        const r = await verify(repo, c, '--identity', key)
        expect(r.code, r.stderr).toBe(3)
      }

      const target = join(tmp.path, 'restore-edited', 'mo-data')
      const restored = await runInProcess(restoreArgs(c, repo, target, '--identity', plainIdentity))
      expect(restored.code, restored.stderr).toBe(3)
      // nothing beside it either: no staging dir, and the data dir's lock released
      expect(await readdir(join(tmp.path, 'restore-edited')).catch(() => [])).toEqual([])
      await undo()
    }

    expect((await verify(repo, c, '--identity', readerKey)).code).toBe(0)
  })

  it("prune keeps a member that an edited record no longer names, with the writer key or this host's cache", async () => {
    const [a, b, c] = ids
    const undo = await editRecord(repo, c, (r) => Object.assign(r, {base: a, chain: [a, c]}))
    const runs = [
      {args: ['--writer-key', writerKey], env: attackerEnv()},
      {args: [], env: hostEnv()},
    ]
    for (const {args, env} of runs) {
      const r = await runInProcess(
        ['br', 'prune', '--path', repo, '--keep-last', '1', '--dry-run', '--json', ...args],
        {env},
      )
      expect(r.code, r.stderr).toBe(0)
      const plan = JSON.parse(r.stdout)
      expect(plan.removed).not.toContain(b)
      expect(plan.removed).not.toContain(a)
      expect(flat(r.stderr)).toContain(`backup ${c} cannot be relied on`)
    }

    // delete of the dropped member names the edited record as a possible dependant
    const del = await runInProcess(['br', 'delete', b, '--path', repo, '--writer-key', writerKey])
    expect(del.code, del.stderr).toBe(2)
    expect(flat(del.stderr)).toContain(c)
    await undo()
    const clean = await runInProcess([
      'br',
      'prune',
      '--path',
      repo,
      '--keep-last',
      '1',
      '--dry-run',
      '--json',
      '--writer-key',
      writerKey,
    ])
    expect(clean.code, clean.stderr).toBe(0)
    expect(JSON.parse(clean.stdout).removed).toEqual([])
  })

  it('a missing manifest in a chain member is exit 3 naming the member; verify --quick checks manifest.age too', async () => {
    const [, b, c] = ids
    const manifest = join(repo, 'backups', b, 'manifest.age')
    const saved = await readFile(manifest)
    await rm(manifest)
    for (const extra of [['--identity', readerKey], ['--quick']]) {
      const r = await verify(repo, c, ...extra)
      expect(r.code, r.stderr).toBe(3)
      expect(flat(r.stderr)).toContain(`backup ${b}: manifest manifest.age is missing`)
    }

    // same size, one byte changed: only hashing finds it
    const flipped = Buffer.from(saved)
    flipped[flipped.length - 5] ^= 0xff
    await writeFile(manifest, flipped)
    const quick = await verify(repo, c, '--quick')
    expect(quick.code, quick.stderr).toBe(3)
    expect(flat(quick.stderr)).toContain(`backup ${b}: manifest manifest.age does not match the SHA-256 in its record`)
    await writeFile(manifest, saved)
    expect((await verify(repo, c, '--quick')).code).toBe(0)
  })
})

describe('a damaged backup.json', () => {
  it('is listed as damaged, skipped by prune (keeping older ones), passed over as a base, and removed by delete', async () => {
    const repo = join(tmp.path, 'damaged-repo')
    const ids: string[] = []
    for (let i = 0; i < 3; i++) ids.push((await hostBackup(repo, 'full')).id)
    await writeFile(recordFile(repo, ids[1]), '{"format": 2, "id": ')

    const list = await runInProcess(['br', 'list', '--path', repo])
    expect(list.code, list.stderr).toBe(0)
    expect(list.stdout).toContain(ids[0])
    expect(list.stdout).toMatch(new RegExp(`${ids[1]}.*DAMAGED`))
    expect(flat(list.stderr)).toContain(`backup ${ids[1]} is damaged`)
    const json = JSON.parse((await runInProcess(['br', 'list', '--path', repo, '--json'])).stdout)
    expect(json.map((r: {id: string}) => r.id)).toEqual(ids)
    expect(json[1]).toMatchObject({damaged: expect.stringContaining('not valid JSON'), id: ids[1]})

    const prune = await runInProcess(['br', 'prune', '--path', repo, '--keep-last', '1', '--json'])
    expect(prune.code, prune.stderr).toBe(0)
    expect(JSON.parse(prune.stdout).removed).toEqual([])
    expect(flat(prune.stderr)).toContain(`backup ${ids[1]} cannot be relied on`)
    expect(await readdir(join(repo, 'backups'))).toHaveLength(3)

    const inc = await backupCli(repo, dataDir, ['--writer-key', writerKey], hostEnv(), '--type', 'incremental')
    expect(inc.base).toBe(ids[2])

    const del = await runInProcess(['br', 'delete', ids[1], '--path', repo])
    expect(del.code, del.stderr).toBe(0)
    const after = JSON.parse((await runInProcess(['br', 'list', '--path', repo, '--json'])).stdout)
    expect(after.map((r: {id: string}) => r.id)).toEqual([ids[0], ids[2], inc.id])
  })
})

describe('keys from br config', () => {
  it('writer-key in config signs every backup; trusted-signer in config makes readers refuse unsigned ones', async () => {
    const env = {...hostEnv(), XDG_CONFIG_HOME: join(tmp.path, 'xdg-config')}
    const repo = join(tmp.path, 'config-repo')
    const signer = (await readFile(readerKey, 'utf8')).split('\n').find((l) => l.startsWith('brsig1'))!
    for (const [key, value] of [
      ['writer-key', writerKey],
      ['trusted-signer', signer],
    ]) {
      const set = await runInProcess(['br', 'config', 'set', key, value], {env})
      expect(set.code, set.stderr).toBe(0)
    }

    const signed = await backupCli(repo, dataDir, [], env)
    expect(signed.signature).toMatchObject({alg: 'ed25519'})
    // a passphrase on the command line sets the configured writer key aside
    const passFile = join(tmp.path, 'config-pass')
    // random: a run in process registers it for redaction in this process from then on
    await writeFile(passFile, `${randomPassphrase()}\n`, {mode: 0o600})
    const unsigned = await backupCli(repo, dataDir, ['--passphrase-file', passFile], env)
    expect(unsigned.signature).toBeNull()
    const ok = await runInProcess(['br', 'verify', signed.id, '--path', repo, '--identity', plainIdentity], {env})
    expect(ok.code, ok.stderr).toBe(0)
    const refused = await runInProcess(['br', 'verify', unsigned.id, '--path', repo, '--passphrase-file', passFile], {
      env,
    })
    expect(refused.code, refused.stderr).toBe(3)
    expect(flat(refused.stderr)).toContain('is not signed')
  })
})
