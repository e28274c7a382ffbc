/**
 * Restores into the data dir of a real MariaDB (test/helpers/mariadb.ts), stopped and started by
 * the plugin's hooks:
 *   - two restores at once into the same data dir: exactly one succeeds, the other exits 4 naming
 *     it, and the restored tree is every file of the backup with equal SHA-256 (the server runs
 *     on it and has the backup's database);
 *   - the staged tree changed after it was verified (a file removed by the stop command, i.e.
 *     after verification and before the swap): exit 3, nothing swapped, the server runs again
 *     on its own data.
 */
import {spawn} from 'node:child_process'
import {readdir} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {backupArgs, mariadbService, NO_SQL, restoreArgs} from '../helpers/args.js'
import {RUN, runCli, runInProcess, tempDir} from '../helpers/cli.js'
import {mariadbAvailable, skipReason, startMariadb, type TestServer} from '../helpers/mariadb.js'
import {treeHashes} from '../helpers/tree.js'

const available = mariadbAvailable()

describe.skipIf(!available)(
  `restores into a running MariaDB's data dir${available ? '' : ` (skipped: ${skipReason()})`}`,
  () => {
    let server: TestServer
    let tmp: {cleanup: () => Promise<void>; path: string}
    let repo: string
    let id: string
    let backedUp: Record<string, string>

    const service = (stop = server.stopCommand, start = server.startCommand) => mariadbService(server, {start, stop})
    const databases = async () => (await server.query('show databases')).map((r) => Object.values(r)[0] as string)

    beforeAll(async () => {
      tmp = await tempDir('moctl-br-crash-')
      server = await startMariadb()
      repo = join(tmp.path, 'repo')
      await server.query('create database kept')
      await server.query('create table kept.t (id int primary key)')
      await server.query('insert into kept.t values (1), (2), (3)')
      const backup = await runInProcess(backupArgs(repo, server.dataDir, '--no-encrypt', ...service()))
      expect(backup.code, backup.stderr).toBe(0)
      id = backup.stdout.trim()
      // The backup's files as a restore alone lays them down (each checked against the manifest's SHA-256).
      const reference = join(tmp.path, 'reference')
      const alone = await runInProcess(restoreArgs(id, repo, reference, ...NO_SQL))
      expect(alone.code, alone.stderr).toBe(0)
      backedUp = await treeHashes(reference)
      await server.query('create database after_backup')
    }, 120_000)

    afterAll(async () => {
      await server?.cleanup()
      await tmp?.cleanup()
    })

    it('two restores at once: one succeeds, the other exits 4 naming it; the restored tree is complete', async () => {
      // The first holds the data dir while its stop takes a few seconds more than the server's; its
      // start command copies the tree it swapped in before the server touches it.
      const snapshot = join(tmp.path, 'as-swapped-in')
      const first = spawn(
        process.execPath,
        [
          RUN,
          ...restoreArgs(
            id,
            repo,
            server.dataDir,
            '--force',
            '--discard-old',
            ...service(
              `${server.stopCommand} && sleep 2`,
              `cp -a ${server.dataDir} ${snapshot} && ${server.startCommand}`,
            ),
          ),
        ],
        {stdio: ['ignore', 'pipe', 'pipe']},
      )
      let stderr = ''
      const locked = new Promise<void>((resolve) => {
        first.stderr.on('data', (d) => {
          stderr += d
          if (stderr.includes('Lock the data directory')) resolve()
        })
      })
      const exited = new Promise<null | number>((resolve) => {
        first.on('close', resolve)
      })
      await locked
      const second = await runCli(restoreArgs(id, repo, server.dataDir, '--force', '--discard-old', ...service()))
      expect(second.code, second.stderr).toBe(4)
      expect(second.stderr).toContain(`data directory ${server.dataDir} is locked by br restore`)
      expect(second.stderr).toContain(`(pid ${first.pid} `)
      expect(await exited, stderr).toBe(0)

      expect(await databases()).toContain('kept')
      expect(await databases()).not.toContain('after_backup')
      expect(await server.query('select id from kept.t order by id')).toEqual([{id: 1}, {id: 2}, {id: 3}])
      // Every file of the backup, byte for byte, as swapped in (before the server touched it).
      const restored = await treeHashes(snapshot)
      expect(Object.keys(restored).length).toBeGreaterThan(50)
      expect(restored).toEqual(backedUp)
      expect((await readdir(join(server.dataDir, '..'))).filter((n) => n.includes('.restore-'))).toEqual([])
    })

    it('a staged tree changed after its verification is not swapped in: exit 3, the server runs on its own data', async () => {
      await server.query('create database before_tamper')
      const parent = join(server.dataDir, '..')
      // Runs after the verification and before the swap: removes one file from the staged tree.
      const tamper = `${server.stopCommand} && rm -f ${parent}/.data.restore-${id}-*/ibdata1`
      const restore = await runInProcess(restoreArgs(id, repo, server.dataDir, '--force', ...service(tamper)))
      expect(restore.code, restore.stderr).toBe(3)
      expect(restore.stderr).toContain('is not the one verified')
      expect(restore.stderr).toContain('refusing to swap it in')
      expect(await databases()).toContain('before_tamper')
      const left = await readdir(parent)
      expect(left.filter((n) => n.includes('.restore-') || n.includes('.before-'))).toEqual([])
    })
  },
)
