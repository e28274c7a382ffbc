/**
 * With a real mariadbd answering SQL (standing in for MatrixOne): a cold backup that would copy
 * the files of the running server with nothing to stop it is refused (exit 2) unless
 * --allow-running, and a bad input never stops the server, whose stop command is the real one.
 */
import {readdir, readFile, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {backupArgs, serviceArgs, sqlArgs, suiteKey} from '../helpers/args.js'
import {runInProcess, tempDir, type TempDir} from '../helpers/cli.js'
import {mariadbAvailable, skipReason, startMariadb, type TestServer} from '../helpers/mariadb.js'

const available = mariadbAvailable()

describe.skipIf(!available)(`refusals with a running MariaDB${available ? '' : ` (skipped: ${skipReason()})`}`, () => {
  let server: TestServer
  let tmp: TempDir
  let recipient: string
  let marker: string
  const sql = () => sqlArgs(server.port)

  beforeAll(async () => {
    tmp = await tempDir()
    server = await startMariadb()
    marker = join(tmp.path, 'STOPPED')
    recipient = (await suiteKey(tmp.path)).recipient
  })

  afterAll(async () => {
    await server?.cleanup()
    await tmp?.cleanup()
  })

  it('a cold backup with --service none while the server answers SQL: exit 2, and how to do it right', async () => {
    const repo = join(tmp.path, 'repo-running')
    const r = await runInProcess(backupArgs(repo, server.dataDir, '-r', recipient, ...sql()))
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toContain(
      `Error: something answers SQL on 127.0.0.1:${server.port}: a cold backup of a running service is not a consistent copy`,
    )
    expect(r.stderr).toContain(
      'Hint: let backup stop and start it: --service mo_ctl, --service systemd, or --service command',
    )
    expect(r.stderr).toContain('Hint: or back up while it runs with --mode online')
    expect(r.stderr).toContain('Hint: or pass --allow-running')
    // Refused before anything was written.
    await expect(stat(repo)).rejects.toThrow(/ENOENT/)
    expect(await server.query('select 1 as one')).toEqual([{one: 1}])
  })

  it('--allow-running takes it anyway, with a warning', async () => {
    const repo = join(tmp.path, 'repo-allowed')
    const r = await runInProcess(
      backupArgs(repo, server.dataDir, '-r', recipient, '--allow-running', '--json', ...sql()),
    )
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toContain(
      `Warning: something answers SQL on 127.0.0.1:${server.port}: backing up a running service (--allow-running)`,
    )
    expect(JSON.parse(r.stdout).excluded).toEqual(['shared-cache', 'tmp'])
  })

  it('a bad recipient never runs the real stop command: the server keeps answering', async () => {
    const repo = join(tmp.path, 'repo-bad-recipient')
    const bad = `${recipient.slice(0, -1)}${recipient.endsWith('q') ? 'p' : 'q'}`
    const r = await runInProcess(
      backupArgs(
        repo,
        server.dataDir,
        '-r',
        bad,
        ...serviceArgs(`touch '${marker}'; ${server.stopCommand}`, server.startCommand),
        ...sql(),
      ),
    )
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('is not an age public key')
    await expect(stat(marker)).rejects.toThrow(/ENOENT/)
    expect(await server.pid()).not.toBeNull()
    expect(await server.query('select 1 as one')).toEqual([{one: 1}])
    await expect(stat(repo)).rejects.toThrow(/ENOENT/)
    // The server's log shows no shutdown since it started.
    expect(await readFile(server.logFile, 'utf8')).not.toMatch(/Normal shutdown/)
    expect(await readdir(tmp.path)).not.toContain('STOPPED')
  })
})
