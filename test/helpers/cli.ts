/**
 * Runs the real CLI (bin/run.js, built dist/) as a child process, the way an operator or a cron
 * job does: no TTY, separate stdout and stderr, the exit code.
 */
import {spawn} from 'node:child_process'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
export const RUN = join(ROOT, 'bin', 'run.js')

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
  // A developer's own ~/.config/moctl/config.json must never leak into the tests.
  const env: NodeJS.ProcessEnv = {...process.env, XDG_CONFIG_HOME: join(ROOT, '.tmp', 'empty-config'), ...options.env}
  // vitest sets NODE_ENV=test; a user's shell has none, and oclif behaves differently without it.
  if (!options.env || !('NODE_ENV' in options.env)) delete env.NODE_ENV
  // The CLI must never read the developer's own settings or keys in tests.
  for (const key of [
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
  ]) {
    if (!options.env || !(key in options.env)) delete env[key]
  }

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
