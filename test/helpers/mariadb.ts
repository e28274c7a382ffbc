import mysql from 'mysql2/promise'
/**
 * A throwaway MariaDB server standing in for MatrixOne in integration tests: its own temp base
 * dir, its own data dir, a free loopback port; never the shared server on 3306.
 *
 * Layout of the base dir (the data dir gets swapped by restore, so nothing of the running server
 * lives in it, and `<data>.before-<id>` lands beside it, inside the base dir):
 *
 *   <base>/data/            the data directory: a copy of the initialised one (see template below)
 *   <base>/run/             mariadbd.pid, launch.pid, mysqld.sock
 *   <base>/mariadbd.log     the server's output (appended on every start)
 *   <base>/start.sh         what `startCommand` runs: launches mariadbd detached, returns at once
 *   <base>/stop.sh          what `stopCommand` runs: SIGTERM, returns once the process is gone
 *
 * The scripts only ever signal a pid whose command line names this server's pid file, so a
 * stale pid file can never reach another process (the shared server included).
 *
 * mariadb-install-db runs once per mariadbd binary, into <TEST_CACHE>/mariadb-template/ (the
 * machine's test cache, build-once.ts; its bootstrap
 * costs about a second of CPU and five of waiting, and about ten servers start in a run): each
 * server gets a copy of that initialised data dir (`cp -a`). Nothing in it names its path. Delete
 * the folder to make it again. A server run as another account (`user`) is installed for it.
 */
import {execFile} from 'node:child_process'
import {accessSync, constants, readFileSync} from 'node:fs'
import {chmod, chown, mkdir, readFile, rename, rm, stat, writeFile} from 'node:fs/promises'
import {userInfo} from 'node:os'
import {delimiter, join} from 'node:path'
import {promisify} from 'node:util'

import {type SqlSettings} from '../../src/lib/service/types.js'
import {buildOnce, TEST_CACHE} from './build-once.js'
import {tempDir} from './cli.js'
import {needs} from './needs.js'
import {freePort} from './net.js'

const run = promisify(execFile)

export interface MariadbBinaries {
  installDb: string
  mariadbd: string
}

export type Row = Record<string, unknown>

export interface TestServer {
  baseDir: string
  /** removes everything: stops the server (SIGKILL if it must), deletes the base dir; idempotent */
  cleanup(): Promise<void>
  dataDir: string
  logFile: string
  /** the server's pid from its pid file, or null when it is not running */
  pid(): Promise<null | number>
  pidFile: string
  port: number
  /** one statement on a fresh connection as root; rows for a select, [] otherwise */
  query(sql: string): Promise<Row[]>
  socket: string
  /** SQL settings for the service layer: 127.0.0.1:port as root, a 60 s deadline */
  sql: SqlSettings
  /** runs startCommand and waits until this server answers SQL */
  start(): Promise<void>
  /** shell command line: launches mariadbd detached and returns at once, like `mo_ctl start` */
  startCommand: string
  /** runs stopCommand */
  stop(): Promise<void>
  /** shell command line: stops mariadbd cleanly, returns once it has exited, non-zero if it would not */
  stopCommand: string
}

export interface StartOptions {
  /** parent of the temp base dir (default: the OS temp dir) */
  dir?: string
  /** how long the first start may take to answer SQL (default 60 s) */
  readyTimeoutMs?: number
  /**
   * the account mariadbd runs as (`--user`, as root only): the data dir is installed owned by it,
   * and the base dir opened to it (default: whoever runs the tests)
   */
  user?: string
}

const SEARCH_DIRS = ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin']

/** mariadbd and mariadb-install-db from PATH, /usr/sbin or /usr/bin; null when not installed. */
export function findMariadb(): MariadbBinaries | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...SEARCH_DIRS]
  const find = (name: string) => dirs.map((d) => join(d, name)).find((path) => isExecutable(path))
  const mariadbd = find('mariadbd')
  const installDb = find('mariadb-install-db')
  return mariadbd && installDb ? {installDb, mariadbd} : null
}

export function skipReason(): string {
  return 'mariadbd not found: apt-get install -y mariadb-server'
}

/**
 * Whether MariaDB suites can run here. In CI a missing server is a failure, never a skip: throws.
 * Use as `describe.skipIf(!mariadbAvailable())(…)`.
 */
export function mariadbAvailable(): boolean {
  return needs(findMariadb() !== null, skipReason())
}

/** Installs a fresh data dir and starts a server on it; resolves once it answers SQL. */
export async function startMariadb(options: StartOptions = {}): Promise<TestServer> {
  const bins = findMariadb()
  if (!bins) throw new Error(skipReason())
  const {path: baseDir} = await tempDir('moctl-br-mariadb-', options.dir)
  const paths = {
    baseDir,
    dataDir: join(baseDir, 'data'),
    launchPidFile: join(baseDir, 'run', 'launch.pid'),
    logFile: join(baseDir, 'mariadbd.log'),
    pidFile: join(baseDir, 'run', 'mariadbd.pid'),
    socket: join(baseDir, 'run', 'mysqld.sock'),
  }
  await mkdir(join(baseDir, 'run'))
  const user = options.user ?? userInfo().username
  if (options.user) {
    // mariadbd drops to that account: it must reach the data dir and write its pid file and socket.
    await chmod(baseDir, 0o755)
    const {stdout} = await run('id', ['-u', user])
    const {stdout: gid} = await run('id', ['-g', user])
    await chown(join(baseDir, 'run'), Number(stdout), Number(gid))
  }

  try {
    // A test's own account (made for one run) gets its own install; ours, a copy of the template.
    await (options.user ? install(bins.installDb, paths, user) : run('cp', ['-a', await template(bins), paths.dataDir]))
    for (let attempt = 1; ; attempt++) {
      // Another suite may take the free port between our probe and mariadbd's bind: try another.
      const port = await freePort()
      const server = await makeServer(bins, paths, port, user)
      const outcome = await server.launch(options.readyTimeoutMs ?? 60_000)
      if (outcome === 'ready') {
        track(server.handle, paths)
        return server.handle
      }

      await server.handle.stop().catch(() => {})
      if (attempt >= 5) throw new Error(`could not bind mariadbd to a free port after ${attempt} attempts`)
    }
  } catch (error) {
    killOurs(paths.pidFile, paths.launchPidFile)
    await rm(baseDir, {force: true, recursive: true})
    throw error
  }
}

interface Paths {
  baseDir: string
  dataDir: string
  launchPidFile: string
  logFile: string
  pidFile: string
  socket: string
}

// Small and quick: the tests hold a few rows, and a clean shutdown should take a second.
const SERVER_TUNING = [
  '--innodb-buffer-pool-size=16M',
  '--innodb-log-file-size=8M',
  '--innodb-buffer-pool-load-at-startup=0',
  '--innodb-buffer-pool-dump-at-shutdown=0',
  '--skip-name-resolve',
  '--max-connections=50',
]

const TEMPLATES = join(TEST_CACHE, 'mariadb-template')

/**
 * The initialised data dir for servers that run as whoever runs the tests, made by
 * mariadb-install-db the first time it is asked for (per mariadbd binary). Suites in other workers ask at the same
 * time: one installs while the others wait on a lock (a directory, which mkdir creates for exactly
 * one of them, holding its pid; a lock whose process is gone is taken over), and the install goes
 * into a temp dir renamed into place, so a killed install never leaves half a template.
 */
async function template(bins: MariadbBinaries): Promise<string> {
  const {mtimeMs, size} = await stat(bins.mariadbd)
  const dir = join(TEMPLATES, `${userInfo().username}-${size}-${Math.trunc(mtimeMs)}`)
  const data = join(dir, 'data')
  await mkdir(TEMPLATES, {recursive: true})
  await buildOnce(
    data,
    `${dir}.lock`,
    async () => {
      const {cleanup, path: staging} = await tempDir('.installing-', TEMPLATES)
      try {
        await mkdir(join(staging, 'run'))
        await install(bins.installDb, {baseDir: staging, dataDir: join(staging, 'data')}, userInfo().username)
        await rm(join(staging, 'run'), {force: true, recursive: true})
        await rename(staging, dir)
      } finally {
        await cleanup()
      }
    },
    100,
  )
  return data
}

async function install(installDb: string, paths: Pick<Paths, 'baseDir' | 'dataDir'>, user: string): Promise<void> {
  try {
    await run(
      installDb,
      [
        '--no-defaults',
        `--datadir=${paths.dataDir}`,
        // Its own temp dir: servers bootstrapping side by side in one /tmp have failed on each
        // other's temp tables (ERROR 1051 Unknown table 'mysql.tmp_proxies_priv').
        `--tmpdir=${join(paths.baseDir, 'run')}`,
        `--user=${user}`,
        // root@127.0.0.1 with an empty password over TCP, as on an old-style fresh install
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        '--skip-name-resolve',
        '--innodb-buffer-pool-size=16M',
        '--innodb-log-file-size=8M',
      ],
      {maxBuffer: 16 * 1024 * 1024, timeout: 120_000},
    )
  } catch (error) {
    const {stderr = '', stdout = ''} = error as {stderr?: string; stdout?: string}
    throw new Error(`mariadb-install-db failed: ${(error as Error).message}\n${tailOf(stdout + stderr)}`)
  }
}

async function makeServer(bins: MariadbBinaries, paths: Paths, port: number, user: string) {
  const serverArgs = [
    '--no-defaults',
    `--datadir=${paths.dataDir}`,
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    `--socket=${paths.socket}`,
    `--pid-file=${paths.pidFile}`,
    `--tmpdir=${join(paths.baseDir, 'run')}`,
    `--user=${user}`,
    ...SERVER_TUNING,
  ]
  const startScript = join(paths.baseDir, 'start.sh')
  const stopScript = join(paths.baseDir, 'stop.sh')
  await writeScript(
    startScript,
    `${prelude(paths)}
if pid=$(server_pid); then
  echo "mariadbd is already running (pid $pid)"
  exit 0
fi
cd ${q(paths.baseDir)} || exit 1
# detached from us: its own session, output to the log, nothing inherited that we wait on
setsid nohup ${[bins.mariadbd, ...serverArgs].map((a) => q(a)).join(' ')} >>${q(paths.logFile)} 2>&1 </dev/null &
pid=$!
echo $pid >"$launch_pid_file"
# Return once the launch has exec'd (its command line names our pid file), not while it is still
# a copy of this shell: a status check right after the start (mo_ctl's, with START_INTERVAL=0)
# must find it, however busy the machine.
ticks=0
while alive "$pid" && ! tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "--pid-file=$pid_file"; do
  ticks=$((ticks + 1))
  [ "$ticks" -gt 500 ] && break
  sleep 0.01
done
echo "mariadbd launching (pid $pid), log ${paths.logFile}"
`,
  )
  await writeScript(
    stopScript,
    `${prelude(paths)}
timeout=\${MOCTL_TEST_STOP_TIMEOUT:-60}
if ! pid=$(server_pid); then
  echo "mariadbd is not running"
  rm -f "$launch_pid_file"
  exit 0
fi
kill -TERM "$pid"
ticks=0
while alive "$pid"; do
  ticks=$((ticks + 1))
  if [ "$ticks" -gt $((timeout * 10)) ]; then
    echo "mariadbd (pid $pid) did not exit within \${timeout}s" >&2
    exit 1
  fi
  sleep 0.1
done
rm -f "$launch_pid_file"
echo "mariadbd (pid $pid) stopped"
`,
  )

  const sql: SqlSettings = {deadlineMs: 60_000, host: '127.0.0.1', port, user: 'root'}
  const startCommand = `/bin/sh ${q(startScript)}`
  const stopCommand = `/bin/sh ${q(stopScript)}`
  let cleaned = false

  /** Starts the server: 'ready' once it answers as itself, 'port-taken' when it could not bind. */
  const launch = async (timeoutMs: number): Promise<'port-taken' | 'ready'> => {
    const logOffset = await stat(paths.logFile).then(
      (s) => s.size,
      () => 0,
    )
    await runScript(startCommand)
    const deadline = Date.now() + timeoutMs
    for (;;) {
      try {
        const [row] = await query(port, 'select @@pid_file as pidFile', 1000)
        // Something answered: is it us, or whoever took the port first?
        return row?.pidFile === paths.pidFile ? 'ready' : 'port-taken'
      } catch (error) {
        const log = (await readFile(paths.logFile, 'utf8').catch(() => '')).slice(logOffset)
        if (/Bind on TCP\/IP port|Address already in use/.test(log)) return 'port-taken'
        if (/\[ERROR] Aborting/.test(log) || Date.now() > deadline) {
          throw new Error(`mariadbd did not answer on 127.0.0.1:${port}: ${(error as Error).message}\n${tailOf(log)}`)
        }
      }

      await new Promise((resolve) => {
        setTimeout(resolve, 100)
      })
    }
  }

  const handle: TestServer = {
    baseDir: paths.baseDir,
    async cleanup() {
      if (cleaned) return
      cleaned = true
      live.delete(handle)
      await runScript(stopCommand).catch(() => killOurs(paths.pidFile, paths.launchPidFile))
      await rm(paths.baseDir, {force: true, recursive: true})
    },
    dataDir: paths.dataDir,
    logFile: paths.logFile,
    async pid() {
      const text = await readFile(paths.pidFile, 'utf8').catch(() => '')
      const pid = Number.parseInt(text, 10)
      return Number.isInteger(pid) && pid > 0 ? pid : null
    },
    pidFile: paths.pidFile,
    port,
    query: (statement) => query(port, statement),
    socket: paths.socket,
    sql,
    async start() {
      if ((await launch(60_000)) !== 'ready') throw new Error(`port ${port} was taken by another server`)
    },
    startCommand,
    async stop() {
      await runScript(stopCommand)
    },
    stopCommand,
  }
  return {handle, launch}
}

/**
 * Shell functions shared by both scripts. `server_pid` prints the pid of our mariadbd when it
 * runs: from its pid file, else from the launcher's (a stop right after a start, before mariadbd
 * wrote its own), and only if that process's command line names our pid file.
 */
function prelude(paths: Paths): string {
  return `#!/bin/sh
# Generated by test/helpers/mariadb.ts for the test server in ${paths.baseDir}
pid_file=${q(paths.pidFile)}
launch_pid_file=${q(paths.launchPidFile)}

# alive PID: the process exists and is not a zombie (a zombie has exited; only its reaping is due)
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" = Z ]; then return 1; fi
  return 0
}

# ours PID: its command line names our pid file (setsid and nohup keep the arguments as they exec)
ours() {
  [ -r "/proc/$1/cmdline" ] || return 0
  tr '\\0' '\\n' <"/proc/$1/cmdline" | grep -qxF -- "--pid-file=$pid_file"
}

server_pid() {
  for f in "$pid_file" "$launch_pid_file"; do
    [ -s "$f" ] || continue
    p=$(cat "$f")
    case "$p" in '' | *[!0-9]*) continue ;; esac
    if alive "$p" && ours "$p"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}
`
}

async function query(port: number, statement: string, connectTimeout = 10_000): Promise<Row[]> {
  const connection = await mysql.createConnection({connectTimeout, host: '127.0.0.1', port, user: 'root'})
  try {
    const [rows] = await connection.query(statement)
    return Array.isArray(rows) ? (rows as Row[]) : []
  } finally {
    await connection.end().catch(() => connection.destroy())
  }
}

async function runScript(command: string): Promise<void> {
  try {
    await run('/bin/sh', ['-c', command], {timeout: 120_000})
  } catch (error) {
    const {stderr = '', stdout = ''} = error as {stderr?: string; stdout?: string}
    throw new Error(`${command} failed: ${(error as Error).message}\n${tailOf(stdout + stderr)}`)
  }
}

async function writeScript(path: string, text: string): Promise<void> {
  await writeFile(path, text)
  await chmod(path, 0o755)
}

/** Servers started and not cleaned up yet: if the test process exits anyway, they die with it. */
const live = new Map<TestServer, Paths>()
let exitHandler = false
function track(server: TestServer, paths: Paths): void {
  live.set(server, paths)
  if (exitHandler) return
  exitHandler = true
  process.once('exit', () => {
    for (const p of live.values()) killOurs(p.pidFile, p.launchPidFile)
  })
}

/** SIGKILL the server of these pid files, if the pid is alive and really ours. Synchronous. */
function killOurs(pidFile: string, launchPidFile: string): void {
  for (const file of [pidFile, launchPidFile]) {
    let pid: number
    try {
      pid = Number.parseInt(readFileSync(file, 'utf8'), 10)
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
      if (!cmdline.includes(`--pid-file=${pidFile}`)) continue
    } catch {
      continue
    }

    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** single-quoted for /bin/sh */
const q = (s: string) => `'${s.replaceAll("'", String.raw`'\''`)}'`

const tailOf = (text: string, lines = 20) => text.trimEnd().split('\n').slice(-lines).join('\n')
