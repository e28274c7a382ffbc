/**
 * The command lines the integration tests run, built in one place: which repository, which data
 * dir, which key, which service. A test then names only the flags that are its point, so a
 * renamed flag is changed here once, and a reader sees at a glance what a test is about.
 *
 * The default key is an age identity made once per suite (`suiteKey`), not a passphrase: a
 * passphrase costs a full scrypt (2^18) on every run, so only the tests about passphrases use one.
 */
import {join} from 'node:path'

import {generateKeyFile} from '../../src/lib/keys.js'
import {type TestServer} from './mariadb.js'

/** An age identity file and the recipient it reads for. */
export interface SuiteKey {
  identity: string
  recipient: string
}

/** One age identity for a whole suite, written into `dir` (made in process: no CLI run). */
export async function suiteKey(dir: string, name = 'suite.key'): Promise<SuiteKey> {
  const {identityFile, recipient} = await generateKeyFile(join(dir, name))
  return {identity: identityFile, recipient}
}

/**
 * Where nothing answers SQL: port 1 never listens, so the checks that ask MO whether it runs find
 * it stopped, at once (no MO in these tests unless one is started).
 */
export const NO_SQL: readonly string[] = ['--port', '1']

/** `br backup` of `dataDir` into `repo`, then `extra` (the key and the test's own flags). */
export const backupArgs = (repo: string, dataDir: string, ...extra: string[]): string[] => [
  'br',
  'backup',
  '--path',
  repo,
  '--data-dir',
  dataDir,
  ...extra,
]

/** `br restore <id>` from `repo` into `target`, then `extra`. */
export const restoreArgs = (id: string, repo: string, target: string, ...extra: string[]): string[] => [
  'br',
  'restore',
  id,
  '--path',
  repo,
  '--data-dir',
  target,
  ...extra,
]

/** Encrypt to the suite's key: `--recipient age1…`. */
export const encryptTo = (key: SuiteKey): string[] => ['--recipient', key.recipient]

/** Read with the suite's key: `--identity FILE`. */
export const readWith = (key: string | SuiteKey): string[] => [
  '--identity',
  typeof key === 'string' ? key : key.identity,
]

/** `--service command` with these stop and start command lines. */
export const serviceArgs = (stop: string, start: string): string[] => [
  '--service',
  'command',
  '--stop-cmd',
  stop,
  '--start-cmd',
  start,
]

/** SQL at 127.0.0.1:port as root (a test server's account; no password). */
export const sqlArgs = (port: number): string[] => ['--host', '127.0.0.1', '--port', String(port), '--user', 'root']

/**
 * A service whose stop command leaves `marker` and whose start does nothing, with nothing
 * answering SQL: a test that must not stop the service asserts that the marker never appears.
 */
export const markingService = (marker: string): string[] => [
  ...serviceArgs(`touch '${marker}'`, 'true'),
  ...NO_SQL,
  '--sql-timeout',
  '1',
]

/**
 * A test MariaDB (test/helpers/mariadb.ts) as the service: its own stop and start commands (or
 * the ones given, which usually wrap them), SQL as root at its port, 60 s to answer after a start.
 */
export const mariadbService = (
  server: Pick<TestServer, 'port' | 'startCommand' | 'stopCommand'>,
  commands: {start?: string; stop?: string} = {},
): string[] => [
  ...serviceArgs(commands.stop ?? server.stopCommand, commands.start ?? server.startCommand),
  ...sqlArgs(server.port),
  '--sql-timeout',
  '60',
]
