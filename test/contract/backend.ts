/**
 * The contract every repository backend passes (src/lib/repo/backend.ts), written once: a test
 * file per backend calls `backendContract` with a factory (the filesystem's is
 * test/unit/lib/repo/fs-backend.contract.test.ts, the S3 backend's s3-backend.contract.test.ts,
 * whose second processes get the S3 settings through CHILD_S3_ENV).
 *
 * Real processes where the contract is about them: a writer killed with SIGKILL in the middle of a
 * streamed save, and lock contenders racing `createExclusive` from separate processes
 * (backend-child.mjs, on the built dist/). Hostile objects (a FIFO, a directory at a key) are
 * planted by the factory, for the backends where they can exist.
 */
import {type ChildProcess, spawn} from 'node:child_process'
import {once} from 'node:events'
import {dirname, join} from 'node:path'
import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {setTimeout as sleep} from 'node:timers/promises'
import {fileURLToPath} from 'node:url'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import type {S3Settings} from '../../src/lib/repo/address.js'

import {isMissing, type RepoBackend} from '../../src/lib/repo/backend.js'
import {Repository} from '../../src/lib/repo/repository.js'

export interface BackendUnderTest {
  backend: RepoBackend
  cleanup(): Promise<void>
  /** the location a second process opens with backendFor */
  location: string
  /** the settings of an S3 location, for the second process (backend-child.mjs reads them from its environment) */
  s3?: S3Settings
}

/** Plants what a hostile repository writer could put at a key, for a backend that can hold it. */
export interface Planter {
  /** makes a save of `key` fail before it reads its source (a filesystem: a plain file where its folder goes) */
  blockSave?(location: string, key: string): Promise<void>
  directory(location: string, key: string): Promise<void>
  fifo(location: string, key: string): Promise<void>
}

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'backend-child.mjs')
/** Where backend-child.mjs finds an S3 location's settings (test code only: the product reads none from the environment). */
export const CHILD_S3_ENV = 'BACKEND_CHILD_S3_SETTINGS'

/** A second node process running backend-child.mjs; resolves once it printed `until`. */
export async function child(
  args: string[],
  until: string,
  s3?: S3Settings,
): Promise<{lines: string[]; proc: ChildProcess}> {
  const env = s3 ? {...process.env, [CHILD_S3_ENV]: JSON.stringify(s3)} : process.env
  const proc = spawn(process.execPath, [CHILD, ...args], {env, stdio: ['pipe', 'pipe', 'pipe']})
  const lines: string[] = []
  let stderr = ''
  proc.stderr!.on('data', (d) => {
    stderr += d
  })
  await new Promise<void>((resolve, reject) => {
    let buffered = ''
    proc.stdout!.on('data', (d) => {
      buffered += d
      const parts = buffered.split('\n')
      buffered = parts.pop()!
      lines.push(...parts)
      if (parts.includes(until)) resolve()
    })
    proc.once('exit', (code) =>
      reject(new Error(`backend-child ${args[0]} exited (${code}) before "${until}": ${stderr}`)),
    )
  })
  return {lines, proc}
}

const bytesOf = (n: number, seed = 7) => {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) % 251
  return b
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

const keys = async (backend: RepoBackend, prefix: string) => (await backend.list(prefix)).map((o) => o.key)

export function backendContract(
  name: string,
  factory: () => Promise<BackendUnderTest>,
  options: {hostile?: Planter} = {},
): void {
  const {hostile} = options
  describe(`backend contract: ${name}`, () => {
    let t: BackendUnderTest
    let b: RepoBackend

    beforeEach(async () => {
      t = await factory()
      b = t.backend
    })

    afterEach(async () => t.cleanup())

    it('saves from bytes and from a stream; loads whole, streams from an offset, stats and lists what it saved', async () => {
      const small = Buffer.from('{"a":1}\n')
      const savedSmall = await b.save('backups/x/backup.json', small)
      const big = bytesOf(3 * 1024 * 1024 + 17)
      // In uneven pieces: the backend may not rely on chunk sizes.
      const savedBig = await b.save(
        'backups/x/data',
        Readable.from([big.subarray(0, 5), big.subarray(5, 1_000_003), big.subarray(1_000_003)]),
      )
      expect(await b.load('backups/x/backup.json')).toEqual(small)
      expect((await b.load('backups/x/data', {maxBytes: big.length})).equals(big)).toBe(true)
      expect((await collect(b.open('backups/x/data'))).equals(big)).toBe(true)
      expect((await collect(b.open('backups/x/data', {offset: 2_000_000}))).equals(big.subarray(2_000_000))).toBe(true)
      expect(await collect(b.open('backups/x/data', {offset: big.length}))).toHaveLength(0)
      const info = await b.stat('backups/x/data')
      expect(info).toMatchObject({key: 'backups/x/data', size: big.length})
      // A store checksum, where the store keeps one, is the one save resolved to (else none at all).
      for (const [saved, key] of [
        [savedSmall, 'backups/x/backup.json'],
        [savedBig, 'backups/x/data'],
      ] as const) {
        expect(saved.checksum === undefined || saved.checksum.startsWith('sha256:')).toBe(true)
        const reported = (await b.stat(key))?.checksum
        if (reported !== undefined) expect(reported).toBe(saved.checksum)
      }

      expect(Math.abs(info!.modifiedMs - Date.now())).toBeLessThan(60_000)
      expect(await b.list('')).toEqual([
        {key: 'backups/x/backup.json', modifiedMs: expect.any(Number), size: small.length},
        {key: 'backups/x/data', modifiedMs: expect.any(Number), size: big.length},
      ])
    })

    it('replaces an object whole on a second save', async () => {
      await b.save('k', Buffer.from('first, longer than the second'))
      await b.save('k', Buffer.from('second'))
      expect((await b.load('k')).toString()).toBe('second')
      expect(await keys(b, '')).toEqual(['k'])
    })

    it('lists by prefix, sorted, with no directory meaning', async () => {
      for (const key of ['b/4', 'a/2', 'ab/3', 'a/1', 'a/deep/5', 'top']) await b.save(key, Buffer.from(key))
      expect(await keys(b, 'a/')).toEqual(['a/1', 'a/2', 'a/deep/5'])
      expect(await keys(b, 'a')).toEqual(['a/1', 'a/2', 'a/deep/5', 'ab/3'])
      expect(await keys(b, 'a/d')).toEqual(['a/deep/5'])
      expect(await keys(b, '')).toEqual(['a/1', 'a/2', 'a/deep/5', 'ab/3', 'b/4', 'top'])
      expect(await keys(b, 'nothing/')).toEqual([])
    })

    it('a missing object: stat is null, load and open fail as missing, remove is no error', async () => {
      expect(await b.stat('no/such')).toBeNull()
      const loaded = await b.load('no/such').catch((error: unknown) => error)
      expect(isMissing(loaded)).toBe(true)
      const opened = await collect(b.open('no/such')).catch((error: unknown) => error)
      expect(isMissing(opened)).toBe(true)
      await b.remove('no/such')
      await b.save('there', Buffer.from('x'))
      await b.remove('there')
      expect(await b.stat('there')).toBeNull()
      expect(await keys(b, '')).toEqual([])
    })

    it('removePrefix removes every object under the prefix, and only those', async () => {
      for (const key of ['backups/1/a', 'backups/1/b', 'backups/12/a', 'keep']) await b.save(key, Buffer.from(key))
      await b.removePrefix('backups/1/')
      expect(await keys(b, '')).toEqual(['backups/12/a', 'keep'])
      await b.removePrefix('nothing/')
    })

    it('refuses to load an object over its bound, before reading it', async () => {
      await b.save('big', bytesOf(4096))
      await expect(b.load('big', {maxBytes: 4095})).rejects.toMatchObject({
        exitCode: 3,
        message: expect.stringContaining('refused unread'),
      })
      expect(await b.load('big', {maxBytes: 4096})).toHaveLength(4096)
    })

    it('an aborted or failed save leaves no object', async () => {
      const abort = new AbortController()
      const endless = new Readable({
        read() {
          this.push(bytesOf(64 * 1024))
        },
      })
      setTimeout(() => abort.abort(), 50)
      await expect(b.save('aborted', endless, {signal: abort.signal})).rejects.toThrow()
      const failing = new Readable({
        read() {
          this.destroy(new Error('source failed'))
        },
      })
      await expect(b.save('failed', failing)).rejects.toThrow('source failed')
      expect(await b.stat('aborted')).toBeNull()
      expect(await b.stat('failed')).toBeNull()
      expect(await keys(b, '')).toEqual([])
      expect(await b.listLeftovers('')).toEqual([])
    })

    it('a writer killed (SIGKILL) in the middle of a save leaves no object: not listed, not loadable; its leftovers go with removePrefix', async () => {
      await b.save('backups/k/old', Buffer.from('kept'))
      const {proc} = await child(['save-slow', t.location, 'backups/k/data'], 'saving', t.s3)
      proc.kill('SIGKILL')
      await once(proc, 'exit')
      expect(await b.stat('backups/k/data')).toBeNull()
      expect(isMissing(await b.load('backups/k/data').catch((error: unknown) => error))).toBe(true)
      expect(await keys(b, '')).toEqual(['backups/k/old'])
      expect(await keys(b, 'backups/k/')).toEqual(['backups/k/old'])
      // What it left (a temp file, a multipart upload) may be seen as a leftover, and is removable.
      for (const left of await b.listLeftovers('')) expect(left.key.startsWith('backups/k/')).toBe(true)
      await b.removePrefix('backups/k/')
      expect(await b.listLeftovers('backups/k/')).toEqual([])
      expect(await keys(b, '')).toEqual([])
    }, 30_000)

    it('createExclusive: of many concurrent creators in one process, exactly one wins, and its object is whole', async () => {
      const results = await Promise.all(
        Array.from({length: 16}, (_, i) => b.createExclusive('lock.json', Buffer.from(`creator ${i}`))),
      )
      expect(results.filter(Boolean)).toHaveLength(1)
      expect((await b.load('lock.json')).toString()).toBe(`creator ${results.indexOf(true)}`)
      expect(await b.createExclusive('lock.json', Buffer.from('late'))).toBe(false)
      expect(await keys(b, '')).toEqual(['lock.json'])
      expect(await b.listLeftovers('')).toEqual([])
    })

    it('createExclusive: of lock contenders in separate processes, released at once, exactly one wins', async () => {
      const contenders = await Promise.all(
        Array.from({length: 4}, (_, i) => child(['create', t.location, 'lock.json', `process ${i}`], 'ready', t.s3)),
      )
      const ends = contenders.map(({proc}) => once(proc, 'exit'))
      for (const {proc} of contenders) proc.stdin!.write('go\n')
      await Promise.all(ends)
      const outcomes = contenders.map(({lines}) => lines.at(-1))
      expect(outcomes.filter((o) => o === 'won')).toHaveLength(1)
      expect(outcomes.filter((o) => o === 'lost')).toHaveLength(3)
      expect((await b.load('lock.json')).toString()).toBe(`process ${outcomes.indexOf('won')}`)
    }, 60_000)

    it('removeIf removes only the object that holds exactly the expected bytes; of concurrent removers one wins', async () => {
      await b.save('lock.json', Buffer.from('theirs'))
      expect(await b.removeIf('lock.json', Buffer.from('mine'))).toBe(false)
      expect((await b.load('lock.json')).toString()).toBe('theirs')
      expect(await b.removeIf('lock.json', Buffer.from('theirs'))).toBe(true)
      expect(await b.stat('lock.json')).toBeNull()
      expect(await b.removeIf('lock.json', Buffer.from('theirs'))).toBe(false)
      expect(await b.removeIf('no/such/folder/lock.json', Buffer.from('theirs'))).toBe(false)
      await b.save('lock.json', Buffer.from('stale'))
      const results = await Promise.all(Array.from({length: 16}, () => b.removeIf('lock.json', Buffer.from('stale'))))
      expect(results.filter(Boolean)).toHaveLength(1)
      expect(await keys(b, '')).toEqual([])
      expect(await b.listLeftovers('')).toEqual([])
    })

    // The class of the lock's two-holders race: a late remover of a stale lock, once its first
    // remover's successor held it, moved the new lock aside for a moment, and a third writer
    // created its own in that moment.
    it('a remover of bytes the object does not hold never takes it from its place, not for a moment', async () => {
      await b.save('lock.json', Buffer.from('holder'))
      const state = {removing: true}
      let missing = 0
      let looks = 0
      // A creator looks as often as it can: each look that finds no object is a moment in which
      // its createExclusive would have won.
      const watcher = (async () => {
        while (state.removing) {
          if ((await b.stat('lock.json')) === null) missing++
          looks++
        }
      })()
      for (let round = 0; round < 10; round++) {
        const removed = await Promise.all(Array.from({length: 8}, () => b.removeIf('lock.json', Buffer.from('stale'))))
        expect(removed.filter(Boolean)).toEqual([])
      }

      state.removing = false
      await watcher
      expect(looks).toBeGreaterThan(0)
      expect(missing).toBe(0)
      expect((await b.load('lock.json')).toString()).toBe('holder')
      expect(await b.listLeftovers('')).toEqual([])
    })

    it('refuses keys that climb out of the repository', async () => {
      await expect(b.load('../outside')).rejects.toThrow('escapes the repository')
      await expect(b.save('a/../../outside', Buffer.from('x'))).rejects.toThrow('escapes the repository')
    })

    // A backend whose save can fail before it reads (no room for, or no permission on, a folder):
    // the writer a backup pipes into must fail with it, never wait on an unread stream.
    it.runIf(hostile?.blockSave)(
      'a save that fails before reading fails the writer: the pipeline into it rejects at once, commit says why',
      async () => {
        await hostile!.blockSave!(t.location, 'backups/w/data.tar.zst.age')
        const direct = new Readable({read() {}})
        await expect(b.save('backups/w/data.tar.zst.age', direct)).rejects.toThrow()
        const writer = await new Repository(b, t.location).openWriter('w', 'data.tar.zst.age')
        // 32 MiB: far beyond what any stream buffers, so an unread writer would hang here.
        const source = Readable.from(
          (function* () {
            for (let i = 0; i < 32; i++) yield bytesOf(1024 * 1024, i)
          })(),
        )
        const piped = await Promise.race([
          pipeline(source, writer.stream).then(
            () => 'piped',
            (error: unknown) => error,
          ),
          sleep(5000, 'hung'),
        ])
        expect(piped).toBeInstanceOf(Error)
        await expect(writer.commit()).rejects.toBe(piped)
        expect(await b.stat('backups/w/data.tar.zst.age').catch(() => null)).toBeNull()
      },
      10_000,
    )

    // An object store holds no FIFO nor directory: only backends that can are tested for them.
    it.runIf(hostile)(
      'hostile objects: a FIFO or a directory at a key is refused by every read at once (exit 3), and listed, never taken for missing',
      async () => {
        await hostile!.fifo(t.location, 'backups/h/backup.json')
        await hostile!.directory(t.location, 'backups/h/manifest.age/')
        expect(await keys(b, 'backups/h/')).toContain('backups/h/backup.json')
        for (const key of ['backups/h/backup.json', 'backups/h/manifest.age']) {
          await expect(b.load(key)).rejects.toMatchObject({
            exitCode: 3,
            message: expect.stringMatching(/not a regular file/),
          })

          await expect(collect(b.open(key))).rejects.toMatchObject({exitCode: 3})

          await expect(b.stat(key)).rejects.toMatchObject({exitCode: 3})
        }

        // removeIf never reads what it cannot compare: the FIFO stays.
        expect(await b.removeIf('backups/h/backup.json', Buffer.from('x'))).toBe(false)
        expect(await keys(b, 'backups/h/')).toContain('backups/h/backup.json')
      },
      10_000,
    )
  })
}
