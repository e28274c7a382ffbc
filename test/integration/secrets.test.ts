/**
 * Secrets stay secret, with the CLI as a process: the daemons that --start-cmd leaves behind (a
 * `sleep`, and the real mariadbd it launches) carry none of our secret variables in
 * /proc/<pid>/environ, after a backup and after a restore; DEBUG=* output, errors and --json never
 * show a password, passphrase, key or secret variable, not even one inside a stop command line
 * (`mysqladmin -pSECRET`); --password-file logs in to a real MariaDB whose user has a password;
 * Ctrl-C during a slow stop command ends its whole process group and exits 130 within seconds.
 */
import {spawn} from 'node:child_process'
import {existsSync, readFileSync} from 'node:fs'
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {generateIdentity, identityToRecipient} from '../../src/lib/archive/age.js'
import {SECRET_ENV} from '../../src/lib/redact.js'
import {pidAlive} from '../../src/lib/repo/lock.js'
import {backupArgs, restoreArgs, serviceArgs} from '../helpers/args.js'
import {RUN, runCli, tempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'
import {mariadbAvailable, skipReason, startMariadb, type TestServer} from '../helpers/mariadb.js'
import {freePort} from '../helpers/net.js'

let tmp: {cleanup: () => Promise<void>; path: string}
/** pids of the processes the tests leave behind on purpose, killed at the end */
const leftovers: number[] = []

/** Every secret variable with a value that cannot occur by chance. */
async function secretEnv(): Promise<Record<string, string>> {
  const {identity} = await generateIdentity()
  return {
    AWS_ACCESS_KEY_ID: 'AKIAsecretKeyIdValue1',
    AWS_SECRET_ACCESS_KEY: 'aws-Secret-Access-Value-2',
    AWS_SESSION_TOKEN: 'aws-Session-Token-Value-3',
    MOCTL_BR_IDENTITY: identity,
    MOCTL_BR_PASSPHRASE: 'passphrase-Value-4-Zq',
  }
}

/** What /proc/<pid>/environ shows to anyone allowed to read it, as NAME=value entries. */
function environOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean)
}

function expectNoSecrets(text: string, secrets: Record<string, string>, where: string): void {
  for (const [name, value] of Object.entries(secrets)) {
    expect(text.includes(value), `${where} shows the value of ${name}`).toBe(false)
  }
}

function expectCleanEnviron(pid: number, secrets: Record<string, string>, what: string): void {
  const environ = environOf(pid)
  expect(environ.length, `${what} has an environment`).toBeGreaterThan(0)
  for (const name of SECRET_ENV) {
    expect(
      environ.some((entry) => entry.startsWith(`${name}=`)),
      `${what} (pid ${pid}) inherited ${name}`,
    ).toBe(false)
  }

  expectNoSecrets(environ.join('\n'), secrets, `/proc/${pid}/environ of ${what}`)
}

/**
 * The pid a shell wrote with `echo $! > file`, waiting until it is whole: the file exists (empty)
 * from the moment the shell opens it. An empty read is 0, and signalling pid 0 is signalling our
 * own process group: a SIGKILL to it once ended the whole CI run.
 */
async function readPid(file: string): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const text = existsSync(file) ? await readFile(file, 'utf8') : ''
    if (/^\d+\n$/.test(text)) return Number(text)
    await new Promise((resolve) => {
      setTimeout(resolve, 50)
    })
  }

  throw new Error(`${file} never held a pid`)
}

beforeAll(async () => {
  tmp = await tempDir('moctl-br-secrets-')
})

afterAll(async () => {
  for (const pid of leftovers.filter((p) => p > 0)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {}
  }

  await tmp?.cleanup()
})

describe('secrets stay out of what a stop command prints, errors, --json and DEBUG output', () => {
  const stopPassword = 'StopCmdS3cret'
  const argvPassword = 'ArgvS3cretPw'
  // A stop command that fails, echoing its own command line (password included) as its last words.
  const stopCmd = `echo "mysqladmin -p${stopPassword} shutdown: refused" >&2; exit 3`

  it('a failing stop command is named as mysqladmin -p***, with --password and secret variables hidden', async () => {
    const secrets = {...(await secretEnv()), MO_PASSWORD: 'envPw-6-Xy', MOCTL_BR_WRITER_KEY: 'writer-Key-Value-5'}
    const dataDir = join(tmp.path, 'redact-data')
    await makeSmallDataDir(dataDir)
    const args = backupArgs(
      join(tmp.path, 'redact-repo'),
      dataDir,
      ...serviceArgs(stopCmd, 'true'),
      '--port',
      String(await freePort()),
    )
    for (const json of [false, true]) {
      const r = await runCli([...args, '--password', argvPassword, ...(json ? ['--json'] : [])], {
        env: {...secrets, DEBUG: '*'},
      })
      const out = r.stdout + r.stderr
      expect(r.code, out).toBe(5)
      expect(out).toContain('-p*** shutdown')
      expect(out).toContain('--password on the command line is visible to every user')
      // DEBUG=* really was on: oclif's own lines and our hook's are there.
      expect(r.stderr).toContain('stopping the service for br backup')
      expectNoSecrets(out, {...secrets, argvPassword, stopPassword}, json ? 'a --json run' : 'a run')
      if (json)
        expect(JSON.parse(r.stdout).error.message).toBe(
          'stop command failed (exit 3): mysqladmin -p*** shutdown: refused',
        )
    }
  })
})

describe('Ctrl-C during a slow stop command', () => {
  it('kills the stop command with its whole process group, starts the service again and exits 130 within seconds', async () => {
    const dir = join(tmp.path, 'ctrl-c')
    const dataDir = join(dir, 'data')
    await makeSmallDataDir(dataDir)
    const sleepPid = join(dir, 'sleep.pid')
    const started = join(dir, 'started')
    // The shell waits on a sleep of its own: killing only the shell would leave the sleep running.
    const child = spawn(
      process.execPath,
      [
        RUN,
        ...backupArgs(
          join(dir, 'repo'),
          dataDir,
          '--no-encrypt',
          ...serviceArgs(`sleep 60 & echo $! > '${sleepPid}'; wait`, `touch '${started}'`),
          '--port',
          String(await freePort()),
        ),
      ],
      {env: {...process.env, XDG_CONFIG_HOME: join(dir, 'xdg')}, stdio: ['ignore', 'pipe', 'pipe']},
    )
    let stderr = ''
    child.stderr.on('data', (d) => {
      stderr += d
    })
    const exited = new Promise<{code: null | number; signal: NodeJS.Signals | null}>((resolve) => {
      child.on('close', (code, signal) => resolve({code, signal}))
    })
    const pid = await readPid(sleepPid)
    leftovers.push(pid)
    expect(pidAlive(pid)).toBe(true)
    const sent = Date.now()
    child.kill('SIGINT')
    // Before Ctrl-C reached the hook, the CLI waited for the whole sleep: give up after 15 s.
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    const {code} = await exited
    clearTimeout(timer)
    expect(code, stderr).toBe(130)
    expect(Date.now() - sent).toBeLessThan(10_000)
    expect(pidAlive(pid), 'the stop command’s sleep is still running').toBe(false)
    // Nothing answered SQL: the interrupted stop may have stopped it, so it was started again.
    expect(existsSync(started), stderr).toBe(true)
    expect(stderr).toContain('interrupted')
  })
})

describe('with a real MariaDB', () => {
  if (!mariadbAvailable()) {
    it('needs mariadbd', ({skip}) => {
      skip(skipReason())
    })
    return
  }

  let server: TestServer
  const password = 'Mo-Pw-7-Secret'

  beforeAll(async () => {
    server = await startMariadb()
    await server.query(`create user 'br'@'127.0.0.1' identified by '${password}'`)
  })

  afterAll(async () => {
    await server?.cleanup()
  })

  /** --service command with the server's own commands; the start also leaves a sleep behind. */
  const serverService = (sleepPidFile: string, sqlTimeout = 60) => [
    ...serviceArgs(
      server.stopCommand,
      `${server.startCommand} && { sleep 300 </dev/null >/dev/null 2>&1 & echo $! > '${sleepPidFile}'; }`,
    ),
    '--port',
    String(server.port),
    '--user',
    'br',
    '--sql-timeout',
    String(sqlTimeout),
  ]

  it('the daemons a start command leaves behind inherit no secret, after a backup and after a restore', async () => {
    const variables = await secretEnv()
    const secrets = {...variables, MO_PASSWORD: password}
    const dir = join(tmp.path, 'environ')
    const dataDir = join(dir, 'data')
    await makeSmallDataDir(dataDir)
    const repo = join(dir, 'repo')
    const env = {...secrets, DEBUG: '*', XDG_CONFIG_HOME: join(dir, 'xdg')}

    const sleepAfterBackup = join(dir, 'sleep-backup.pid')
    // Encrypted to the recipient of MOCTL_BR_IDENTITY, which the restore reads: the passphrase
    // variable is still in the environment of both runs (what must not be passed on), but no run
    // pays a full scrypt (2^18, ~1.2 CPU-s a file) for it.
    const recipient = await identityToRecipient(variables.MOCTL_BR_IDENTITY)
    const backup = await runCli(
      backupArgs(repo, dataDir, '--recipient', recipient, ...serverService(sleepAfterBackup)),
      {env},
    )
    expect(backup.code, backup.stderr).toBe(0)
    leftovers.push(await readPid(sleepAfterBackup))
    expectCleanEnviron(await readPid(sleepAfterBackup), secrets, 'the sleep left by the start command of a backup')
    expectCleanEnviron((await server.pid())!, secrets, 'mariadbd started by a backup')
    // Under DEBUG=*, through a real login with the password: none of it is printed.
    expectNoSecrets(backup.stdout + backup.stderr, secrets, 'a backup with DEBUG=*')

    // A restore reads the writer key's variable nowhere, but must not pass it on either.
    const restoreSecrets = {...secrets, MOCTL_BR_WRITER_KEY: 'writer-Key-Value-8'}
    const target = join(dir, 'target')
    await makeSmallDataDir(target, {seed: 2})
    const sleepAfterRestore = join(dir, 'sleep-restore.pid')
    const restore = await runCli(
      restoreArgs(backup.stdout.trim(), repo, target, '--force', ...serverService(sleepAfterRestore)),
      {env: {...env, ...restoreSecrets}},
    )
    expect(restore.code, restore.stderr).toBe(0)
    leftovers.push(await readPid(sleepAfterRestore))
    expectCleanEnviron(
      await readPid(sleepAfterRestore),
      restoreSecrets,
      'the sleep left by the start command of a restore',
    )
    expectCleanEnviron((await server.pid())!, restoreSecrets, 'mariadbd started by a restore')
    expectNoSecrets(restore.stdout + restore.stderr, restoreSecrets, 'a restore with DEBUG=*')
  })

  it('--password-file logs in (and wins over MO_PASSWORD); a refused login never prints the password', async () => {
    const dir = join(tmp.path, 'password-file')
    const dataDir = join(dir, 'data')
    await makeSmallDataDir(dataDir)
    const passwordFile = join(dir, 'mo-password')
    await writeFile(passwordFile, `${password}\n`, {mode: 0o600})
    const base = backupArgs(join(dir, 'repo'), dataDir, '--no-encrypt')
    const env = {DEBUG: '*', MO_PASSWORD: 'not-the-Password-9', XDG_CONFIG_HOME: join(dir, 'xdg')}

    const ok = await runCli([...base, ...serverService(join(dir, 'sleep1.pid')), '--password-file', passwordFile], {
      env,
    })
    expect(ok.code, ok.stderr).toBe(0)
    leftovers.push(await readPid(join(dir, 'sleep1.pid')))
    expect(ok.stderr).not.toContain('--password on the command line')
    expectNoSecrets(ok.stdout + ok.stderr, {password}, 'a backup with --password-file')

    // The wrong password from MO_PASSWORD: the readiness check fails, naming the refusal only.
    const wrong = await runCli([...base, ...serverService(join(dir, 'sleep2.pid'), 2), '--json'], {env})
    leftovers.push(await readPid(join(dir, 'sleep2.pid')))
    expect(wrong.code, wrong.stderr).toBe(5)
    expect(JSON.parse(wrong.stdout).error.message).toMatch(/Access denied for user 'br'/)
    expectNoSecrets(wrong.stdout + wrong.stderr, {password, wrong: env.MO_PASSWORD}, 'a refused login')
  })
})
