/**
 * Runs the real CLI (built dist/) two ways, with one result shape (stdout, stderr, the exit code):
 * - runCli: bin/run.js as a child process, the way an operator or a cron job does: no TTY,
 *   separate stdout and stderr, the exit code;
 * - runInProcess: the same command and configuration in the test's own process, for the many
 *   runs whose point is what a command prints and exits with (a refusal, a message, --json),
 *   not that it is a process: it saves the start of Node and oclif (~0.4 CPU-s) per run. Its
 *   comment says which tests must stay runCli.
 * test/integration/in-process.test.ts holds the two to the same output.
 */
import {spawn} from 'node:child_process'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {format} from 'node:util'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
export const RUN = join(ROOT, 'bin', 'run.js')

/** The developer's own settings and keys, which no CLI run in the tests may read. */
const SCRUBBED = [
  'MOCTL_BR_REPO',
  'MOCTL_BR_IDENTITY',
  'MOCTL_BR_PASSPHRASE',
  'MOCTL_BR_RECIPIENT',
  'MO_PASSWORD',
  'MOCTL_BR_DATA_DIR',
  'MOCTL_BR_WRITER_KEY',
  'MOCTL_BR_TRUSTED_SIGNER',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
]

/**
 * What bin/run.js gives oclif: this package as the root, and help as a core plugin. Its check
 * would keep plugin-plugins only when installed, and this checkout does not install it (an
 * optional peer dependency: host-install.test.ts installs it beside moctl, as the README says).
 */
const LOAD_OPTIONS = {
  pluginAdditions: {core: ['@oclif/plugin-help'], path: join(ROOT, 'bin', 'standalone')},
  root: ROOT,
}

export interface CliResult {
  code: null | number
  signal: NodeJS.Signals | null
  stderr: string
  stdout: string
}

export function runCli(
  args: string[],
  options: {bin?: string; cwd?: string; env?: NodeJS.ProcessEnv; node?: string; timeoutMs?: number} = {},
): Promise<CliResult> {
  const env = cliEnv(options.env)
  return new Promise((resolvePromise, reject) => {
    const child = spawn(options.node ?? process.execPath, [options.bin ?? RUN, ...args], {
      cwd: options.cwd ?? ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? 110_000,
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => {
      stdout += d
    })
    child.stderr.on('data', (d) => {
      stderr += d
    })
    child.on('error', reject)
    child.on('close', (code, signal) => resolvePromise({code, signal, stderr, stdout}))
  })
}

/**
 * The environment a CLI run gets: ours, with an empty config dir (a developer's own
 * ~/.config/moctl/config.json must never leak into the tests), no NODE_ENV (vitest sets
 * NODE_ENV=test; a user's shell has none, and oclif behaves differently without it) and none of
 * the developer's own settings or keys; then `env` (a value of undefined removes the variable).
 */
function cliEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const result: NodeJS.ProcessEnv = {...process.env, XDG_CONFIG_HOME: join(ROOT, '.tmp', 'empty-config'), ...env}
  if (!('NODE_ENV' in env)) delete result.NODE_ENV
  for (const key of SCRUBBED) if (!(key in env)) delete result[key]
  for (const [key, value] of Object.entries(result)) if (value === undefined) delete result[key]
  return result
}

/** whether a command is running in this process now (runInProcess runs one at a time) */
let inProcessBusy = false

/**
 * Runs one command of bin/run.js in this test process, with what a process run of it would see
 * and give: the same oclif configuration (bin/run.js's, help and plugins included), argv, the
 * environment runCli gives (swapped into process.env for the run), no TTY (the vitest worker's
 * stdio are pipes, as runCli's are), stdout and stderr captured apart, and the exit code oclif's
 * handler would exit with. It saves the ~0.4 CPU-s of starting Node and loading @oclif/core
 * that every process run pays (the suite has a CPU budget: see scripts/test.sh).
 *
 * For what a process shows and this cannot, keep runCli:
 * - bin/run.js itself (its `plugins` guard, the redaction it installs before oclif starts), a
 *   host CLI, an installed or linked plugin, another Node (`bin`, `node`);
 * - signals and exits: SIGINT and its rollback, a kill, a crash, a timeout;
 * - runs that overlap (lock contention, a second run while the first holds a lock): one command
 *   at a time runs here, and a second while one runs is refused;
 * - what other processes see of it: `ps` and /proc (the command line, a lock holder's pid), the
 *   cwd (`cwd`);
 * - what oclif and `debug` read once, when they load: DEBUG, OCLIF_COLUMNS (refused here);
 * Also: a secret a run reads (a passphrase or password file) stays registered for redaction in
 * this process, so later output that contains it shows ***: give such runs secrets that cannot
 * occur elsewhere (randomPassphrase).
 * - at least one run of each command, and each exit code, stays a process run somewhere.
 */
export async function runInProcess(args: string[], options: {env?: NodeJS.ProcessEnv} = {}): Promise<CliResult> {
  // Loaded here, not at the top: most tests import this file for tempDir or runCli alone.
  const {handle, run} = await import('@oclif/core')
  if (inProcessBusy) throw new Error('runInProcess runs one command at a time: use runCli for runs that overlap')
  const loadTime = Object.keys(options.env ?? {}).filter((name) => name === 'DEBUG' || name.startsWith('OCLIF_'))
  if (loadTime.length > 0)
    throw new Error(`runInProcess cannot set ${loadTime.join(', ')}: oclif reads it when it loads; use runCli`)
  inProcessBusy = true
  const saved = {
    argv: process.argv,
    console: {...console},
    env: {...process.env},
    exit: process.exit,
    exitCode: process.exitCode,
    stderr: process.stderr.write,
    stdout: process.stdout.write,
  }
  let stdout = ''
  let stderr = ''
  const capture =
    (to: 'stderr' | 'stdout') =>
    (chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')
      if (to === 'stdout') stdout += text
      else stderr += text
      const done = rest.find((r) => typeof r === 'function') as (() => void) | undefined
      done?.()
      return true
    }

  const line =
    (to: 'stderr' | 'stdout') =>
    (...parts: unknown[]) =>
      capture(to)(`${format(...parts)}\n`)
  let code: number | undefined
  try {
    replaceEnv(cliEnv(options.env))
    process.argv = [process.execPath, RUN, ...args]
    process.exitCode = undefined
    process.stdout.write = capture('stdout') as typeof process.stdout.write
    process.stderr.write = capture('stderr') as typeof process.stderr.write
    Object.assign(console, {
      debug: line('stderr'),
      error: line('stderr'),
      info: line('stdout'),
      log: line('stdout'),
      warn: line('stderr'),
    })
    try {
      await run(args, LOAD_OPTIONS)
    } catch (error) {
      // What execute() in bin/run.js does with an error: oclif's handler prints it (or not) and
      // exits with its code; here the exit only records the code.
      process.exit = ((exitCode?: number) => {
        code ??= exitCode ?? 0
      }) as typeof process.exit
      await handle(error as Error)
    }

    code ??= Number(process.exitCode ?? 0)
  } finally {
    process.exit = saved.exit
    process.exitCode = saved.exitCode
    process.stdout.write = saved.stdout
    process.stderr.write = saved.stderr
    Object.assign(console, saved.console)
    process.argv = saved.argv
    replaceEnv(saved.env)
    inProcessBusy = false
  }

  return {code, signal: null, stderr, stdout}
}

/** Makes process.env hold exactly `env` (process.env is special: it is changed, not replaced). */
function replaceEnv(env: NodeJS.ProcessEnv): void {
  for (const key of Object.keys(process.env)) if (!(key in env)) delete process.env[key]
  Object.assign(process.env, env)
}

/** A temp dir of the tests' own: `cleanup` removes it and everything in it (idempotent). */
export interface TempDir {
  cleanup: () => Promise<void>
  path: string
}

/**
 * The one way tests make a temp dir: under the OS temp dir, or under `parent` when a test needs
 * it on a given filesystem. Every caller cleans it up in an afterAll/afterEach (or finally).
 */
export async function tempDir(prefix = 'moctl-br-test-', parent = tmpdir()): Promise<TempDir> {
  const path = await mkdtemp(join(parent, prefix))
  return {cleanup: () => rm(path, {force: true, recursive: true}), path}
}
