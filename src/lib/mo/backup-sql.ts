import type {Connection, RowDataPacket} from 'mysql2/promise'

/**
 * Runs MatrixOne's server-side `BACKUP` statement: the source of an online backup.
 *
 * What MO accepts (matrixone pkg/sql/parsers/dialect/mysql/mysql_sql.y `backup_stmt`):
 *   BACKUP '<ts>' FILESYSTEM '<dir>' PARALLELISM '<n>' [TYPE '<type>'] [TIMESTAMP '<backupts>']
 * - '<ts>' is `tree.BackupStart.Timestamp`. The server parses it as a string and does nothing
 *   with it (pkg/frontend `doBackup`: the code that turned it into a TS is commented out). What
 *   mo_br passes is not public (mo_br is closed source); we pass the current time in nanoseconds,
 *   the unit of a TAE timestamp, so the statement reads sensibly in MO's log.
 * - '<dir>' is opened on the server's own filesystem (pkg/backup/fs.go `setupFilesystem`): a
 *   relative path would land under mo-service's working directory, so we require an absolute one.
 *   MO creates the folder and refuses to overwrite a file that exists (LocalFS.Write:
 *   FileAlreadyExists), so the folder must be new or empty.
 * - '<n>' is read with `strconv.ParseUint(s, 10, 16)`; 1..511 is used as given, anything else
 *   becomes a default from the CPU count (tae.go `getParallelCount`).
 * - TIMESTAMP is read with `types.StringToTS`, which panics unless it is `<physical>-<logical>`;
 *   with no TIMESTAMP the backup is full (`BackupTs = types.TS{}`). So a full backup sends neither
 *   TYPE nor TIMESTAMP (that also works on servers older than incremental backups), an
 *   incremental sends `TYPE 'incremental' TIMESTAMP '<backup ts of its base>'`.
 * - The statement returns no rows. The backup ts is learned from the folder: MO writes it into
 *   `tae/tae_sum` (third field, e.g. `1715745404915410000-1`, what `mo_br list` shows as BACKUPTS),
 *   see meta.ts; so runMoBackup must run where the folder is (on the MO host, as DESIGN says).
 * - A string literal is read by MO's MySQL scanner: backslash escapes are honoured, so both `\`
 *   and `'` are escaped with a backslash. Control characters in the folder are refused rather
 *   than escaped: such a path is a mistake, not a wish.
 *
 * Guarantees: the connection is closed or destroyed before runMoBackup returns; no statement
 * timeout unless asked (a backup takes as long as it takes); an aborted signal sends MO a
 * `KILL QUERY` for the statement (best effort, at most a few seconds), destroys the connection
 * and rejects with an `interrupted` BrError; a server that is not MatrixOne is refused (`usage`,
 * exit 2) before anything is written; failures of the statement are `service` BrErrors (exit 5)
 * naming host:port and carrying MO's message.
 * S3 targets (`BACKUP … S3OPTION {…}`, same grammar rule, `infile_or_s3_params`): the keys of
 * MoS3Target; the summary is read by the caller's reader (staged.ts), and the statement br keeps
 * (MoBackupResult.statement) shows the secret key as ***.
 * Not: a check of the folder's contents (sidecars.ts and staged.ts do that).
 */
import {readdir, stat} from 'node:fs/promises'
import {isAbsolute} from 'node:path'

import {BrError, serviceError, throwIfAborted, usageError} from '../errors.js'
import {formatDuration} from '../format.js'
import {connectSql, describeError} from '../service/sql.js'
import {type SqlSettings} from '../service/types.js'
import {TS_PATTERN} from './meta.js'
import {type OnlineBackupSummary, readBackupSummary} from './sidecars.js'

export type MoBackupType = 'full' | 'incremental'

/**
 * Where MO writes when the target is a bucket: `BACKUP … S3OPTION {…}` (pkg/backup/utils.go
 * `getS3Config` reads these keys; `compression` is parsed and ignored, so it is never sent). MO
 * writes the same layout as FILESYSTEM under `filepath` in `bucket`, through its own S3 client,
 * so the credentials must be ones mo-service can use: static keys, or a role it assumes.
 */
export interface MoS3Target {
  accessKeyId?: string
  bucket: string
  endpoint?: string
  /** the key prefix MO writes under, without a final '/' */
  filepath: string
  /** path-style addressing (MinIO and most on-premises stores) */
  isMinio: boolean
  region?: string
  roleArn?: string
  secretAccessKey?: string
}

export interface BackupStatementOptions {
  /** the backup ts of the base (`<physical>-<logical>`); required for, and only for, incremental */
  baseTs?: string
  /** absolute path of the folder MO writes, on the MO host (FILESYSTEM); or give `s3` */
  dir?: string
  /** copy jobs MO runs at once (1..65535; MO uses 1..511 as given) */
  parallelism: number
  /** a bucket MO writes into (S3OPTION) instead of `dir` */
  s3?: MoS3Target
  /** the statement's first argument (MO ignores it); default: now, in nanoseconds */
  ts?: string
  type: MoBackupType
}

/** The exact `BACKUP` statement for a backup into a local folder of the MO host. */
export function backupStatement(options: BackupStatementOptions): string {
  const {baseTs, dir, parallelism, s3, type} = options
  if ((dir === undefined) === (s3 === undefined))
    throw usageError('a BACKUP statement needs one target: a folder or a bucket')
  if (dir !== undefined) checkDir(dir)
  if (!Number.isInteger(parallelism) || parallelism < 1 || parallelism > 65_535) {
    throw usageError(`parallelism ${parallelism} is not a whole number from 1 to 65535`, 'pass e.g. --parallelism 4')
  }

  if (type === 'incremental' && !baseTs) {
    throw usageError(
      'an incremental online backup needs the backup ts of its base',
      'take a full online backup first (--type full)',
    )
  }

  if (type === 'full' && baseTs) throw usageError('a full online backup takes no base backup ts')
  if (baseTs !== undefined && !TS_PATTERN.test(baseTs)) {
    throw usageError(
      `'${baseTs}' is not a MatrixOne backup ts`,
      'a backup ts is <physical ns>-<logical>, e.g. 1715745404915410000-1, as tae/tae_sum records it',
    )
  }

  const ts = options.ts ?? String(BigInt(Date.now()) * 1_000_000n)
  if (hasControlCharacter(ts)) throw usageError(`backup label ${JSON.stringify(ts)} holds a control character`)
  const target = s3
    ? `S3OPTION ${s3Option(s3, parallelism)}`
    : `FILESYSTEM ${quote(dir ?? '')} PARALLELISM ${quote(String(parallelism))}`
  const base = `BACKUP ${quote(ts)} ${target}`
  return type === 'incremental' ? `${base} TYPE 'incremental' TIMESTAMP ${quote(baseTs ?? '')}` : base
}

/** A FILESYSTEM folder as MO would read it: absolute, and no control characters. */
function checkDir(dir: string): void {
  if (!isAbsolute(dir)) {
    throw usageError(
      `backup folder '${dir}' is not an absolute path`,
      'MatrixOne resolves it against its own working directory: give an absolute path on the MatrixOne host',
    )
  }

  if (hasControlCharacter(dir)) throw usageError(`backup folder ${JSON.stringify(dir)} holds a control character`)
}

/** `{'endpoint'='…', …}` in the order the issue and mo_br's docs give; unset keys are left out. */
function s3Option(s3: MoS3Target, parallelism: number): string {
  const pairs: Array<[string, string | undefined]> = [
    ['endpoint', s3.endpoint],
    ['bucket', s3.bucket],
    ['filepath', s3.filepath],
    ['access_key_id', s3.accessKeyId],
    ['secret_access_key', s3.secretAccessKey],
    ['region', s3.region],
    ['is_minio', String(s3.isMinio)],
    ['role_arn', s3.roleArn],
    ['parallelism', String(parallelism)],
  ]
  for (const [key, value] of pairs) {
    if (value !== undefined && hasControlCharacter(value))
      throw usageError(`the stage's ${key} holds a control character`)
  }

  return `{${pairs
    .filter((pair): pair is [string, string] => pair[1] !== undefined && pair[1] !== '')
    .map(([key, value]) => `${quote(key)}=${quote(value)}`)
    .join(', ')}}`
}

/** The statement as it may be shown or recorded: the secret key of an S3OPTION as ***. */
export function shownStatement(statement: string, s3?: MoS3Target): string {
  const secret = s3?.secretAccessKey
  return secret ? statement.replaceAll(quote(secret), "'***'") : statement
}

export interface RunMoBackupOptions {
  baseTs?: string
  /** how long to wait for the connection (default 10 s) */
  connectTimeoutMs?: number
  /** FILESYSTEM: the folder on the MO host; or give `s3` and `summary` */
  dir?: string
  parallelism: number
  /** S3OPTION: the bucket and prefix MO writes */
  s3?: MoS3Target
  signal?: AbortSignal
  /** S3OPTION: reads mo_meta and tae_sum from where MO wrote them (the folder is not on this disk) */
  summary?: (signal?: AbortSignal) => Promise<OnlineBackupSummary>
  /** give up on the statement after this long (default: never) */
  timeoutMs?: number
  type: MoBackupType
}

export interface MoBackupResult {
  /** server time of the backup, as MO printed it in tae/tae_sum */
  backupTime: string
  /** the backup ts MO recorded (`<physical>-<logical>`): the TIMESTAMP of the next incremental */
  backupTs: string
  /** mo_meta's buildinfo: Version, CommitID, … (recorded for restore's version check) */
  buildInfo: Record<string, string>
  elapsedMs: number
  /** MO's backup format version from mo_meta, e.g. '0823' */
  formatVersion: string
  /** what `select version()` returned, e.g. 8.0.30-MatrixOne-v2.0.2 */
  serverVersion: string
  /** the sum of the content sizes MO listed in tae/tae_list */
  size: number
  /** the statement as sent, with an S3OPTION's secret key as */
  statement: string
}

type VersionRow = RowDataPacket & {version: unknown}

const CONNECT_TIMEOUT_MS = 10_000
const KILL_TIMEOUT_MS = 3000

/**
 * Connects, checks that the server is MatrixOne, runs `BACKUP` into `options.dir` and reads the
 * backup ts MO recorded there.
 */
export async function runMoBackup(sql: SqlSettings, options: RunMoBackupOptions): Promise<MoBackupResult> {
  const {dir, signal} = options
  const statement = backupStatement(options)
  if (dir !== undefined) await checkFolderIsNew(dir)
  else if (!options.summary) throw usageError('an S3OPTION backup needs a reader of the staging prefix')
  throwIfAborted(signal)

  const where = `${sql.host}:${sql.port}`
  const started = Date.now()
  const connecting = connectSql({
    connectTimeout: options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
    host: sql.host,
    password: sql.password,
    port: sql.port,
    user: sql.user,
  })
  let connection: Connection
  try {
    connection = await abortable(connecting, signal, async () => {
      await connecting.then(
        (c) => c.destroy(),
        () => {},
      )
    })
  } catch (error) {
    if (error instanceof BrError) throw error
    throw new BrError('service', `could not connect to MatrixOne on ${where}: ${describeError(error)}`, {
      cause: error,
      suggestions: hintsFor(error),
    })
  }

  let serverVersion: string
  try {
    serverVersion = await queryVersion(connection, where, signal)
    if (!serverVersion.includes('MatrixOne')) {
      throw usageError(
        `${where} is not MatrixOne (version() is '${serverVersion}'): an online backup needs MatrixOne's BACKUP statement`,
        'use --mode cold to back up the data directory with the service stopped',
      )
    }

    await runStatement({connection, sql, where}, statement, options)
  } finally {
    await connection.end().catch(() => connection.destroy())
  }

  const shown = shownStatement(statement, options.s3)
  if (options.summary)
    return fromSummary(await options.summary(signal), {serverVersion, started, statement: shown, where})
  return summarise({dir: dir ?? '', serverVersion, started, statement: shown, where}, signal)
}

/** one connection to the server, and how to name it in messages */
interface Session {
  connection: Connection
  sql: SqlSettings
  /** host:port */
  where: string
}

async function queryVersion(connection: Connection, where: string, signal?: AbortSignal): Promise<string> {
  try {
    const [rows] = await abortable(connection.query<VersionRow[]>('select version() as version'), signal, async () =>
      connection.destroy(),
    )
    return String(rows[0]?.version ?? '')
  } catch (error) {
    if (error instanceof BrError) throw error
    throw new BrError('service', `could not ask ${where} for its version: ${describeError(error)}`, {
      cause: error,
      suggestions: hintsFor(error),
    })
  }
}

async function runStatement(session: Session, statement: string, options: RunMoBackupOptions): Promise<void> {
  const {connection, sql, where} = session
  // Stop the server's work before we let go: the caller deletes the folder next.
  const stop = async () => {
    await killQuery(sql, connection.threadId)
    connection.destroy()
  }

  // A destroyed mysql2 connection leaves its pending query unsettled: the timeout goes through
  // the same abortable path as the caller's signal, so both end the wait themselves.
  const {signal, timeoutMs} = options
  const giveUp = new AbortController()
  let timedOut = false
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true
          giveUp.abort()
        }, timeoutMs)
  const onAbort = () => giveUp.abort(signal?.reason)
  if (signal?.aborted) onAbort()
  else signal?.addEventListener('abort', onAbort, {once: true})
  try {
    await abortable(connection.query(statement), giveUp.signal, stop)
  } catch (error) {
    if (timedOut) {
      throw serviceError(
        `the BACKUP statement did not finish within ${formatDuration(timeoutMs ?? 0)} on ${where}`,
        'raise the timeout, or check the MatrixOne log (mo-service) for what it is waiting on',
      )
    }

    if (error instanceof BrError) throw error
    throw explainRefusal(error, {sql, statement, where})
  } finally {
    clearTimeout(timer)
    signal?.removeEventListener('abort', onAbort)
  }
}

/**
 * What MO's refusal of the BACKUP statement means, as one BrError (matrixone v4.2 tree):
 * - not the sys tenant: the privilege check for `tree.BackupStart` is `tenant.IsSysTenant()`
 *   (pkg/frontend/authenticate.go `checkBackUpStartPrivilege`), refused with
 *   `moerr.NewInternalError(ctx, "do not have privilege to execute the statement")`: errno 1105,
 *   "internal error: do not have privilege to execute the statement";
 * - a malformed TIMESTAMP: pkg/backup/backup.go calls `types.StringToTS`, which panics "format of
 *   ts must be physical-logical[, ...]"; the frontend's recover turns it into errno 1105
 *   "internal error: panic format of ts must be physical-logical...: <stack>" (moerr.ConvertPanicError);
 * - killed: `KILL QUERY` answers the statement with moerr.ErrQueryInterrupted (errno 1317, ER_QUERY_INTERRUPTED,
 *   "query interrupted"); `KILL <conn>` or a mo-service that goes away drops the connection.
 * Anything else is MO's own message, as a service error.
 */
export function explainRefusal(error: unknown, run: {sql: SqlSettings; statement: string; where: string}): BrError {
  const {sql, where} = run
  const {code, errno} = error as {code?: unknown; errno?: unknown}
  const message = describeError(error)
  if (/do not have privilege to execute the statement/.test(message)) {
    return new BrError(
      'usage',
      `MatrixOne on ${where} refused BACKUP for user '${sql.user}': only the sys tenant may run it`,
      {
        cause: error,
        suggestions: [
          "connect as a user of the sys account (e.g. --user root, or 'sys:<user>'): BACKUP copies every account's data",
        ],
      },
    )
  }

  if (/format of ts must be physical-logical/.test(message)) {
    const ts = /TIMESTAMP '([^']*)'/.exec(run.statement)?.[1] ?? ''
    return new BrError(
      'usage',
      `MatrixOne on ${where} refused the incremental's TIMESTAMP '${ts}': not <physical>-<logical>`,
      {
        cause: error,
        suggestions: [
          "the base's tae/tae_sum holds a backup ts MatrixOne cannot read: take a full online backup (--type full)",
        ],
      },
    )
  }

  if (errno === 1317 || code === 'ER_QUERY_INTERRUPTED' || /query interrupted/.test(message)) {
    return new BrError(
      'service',
      `the BACKUP statement on ${where} was killed (query interrupted): nothing was published`,
      {
        cause: error,
        suggestions: [
          'someone ran KILL on it, or mo-service is shutting down: check the MatrixOne log, then run the backup again',
        ],
      },
    )
  }

  if (code === 'PROTOCOL_CONNECTION_LOST' || code === 'ECONNRESET' || code === 'EPIPE') {
    return new BrError(
      'service',
      `the connection to ${where} was lost while BACKUP ran (killed, or mo-service stopped): nothing was published`,
      {
        cause: error,
        suggestions: ['check that mo-service is up (mo_ctl status, its log), then run the backup again'],
      },
    )
  }

  return new BrError('service', `the BACKUP statement failed on ${where}: ${message}`, {
    cause: error,
    suggestions: [
      'check the MatrixOne log (mo-service) around the backup',
      'the folder is written by mo-service on the MatrixOne host: it must be writable by that user',
    ],
  })
}

/** Reads what MO recorded in the folder; the folder must be on this host. */
async function summarise(
  run: {dir: string; serverVersion: string; started: number; statement: string; where: string},
  signal?: AbortSignal,
): Promise<MoBackupResult> {
  const {dir, where} = run
  try {
    await stat(dir)
  } catch {
    throw serviceError(
      `the BACKUP statement on ${where} succeeded, but ${dir} does not appear here: mo-service wrote it on its own host, and this CLI runs on another`,
      `run br on the MatrixOne host (then remove ${dir} there), or let MO write into S3 with --stage s3://BUCKET/PREFIX`,
    )
  }

  return fromSummary(await readBackupSummary(dir, signal), {...run, folder: dir})
}

function fromSummary(
  summary: OnlineBackupSummary,
  run: {folder?: string; serverVersion: string; started: number; statement: string; where: string},
): MoBackupResult {
  const {serverVersion, started, statement, where} = run
  if (!summary.backupTs) {
    throw serviceError(
      `${where} (${serverVersion}) recorded no backup ts in ${run.folder ?? 'the staging prefix'}/tae/tae_sum: it is too old for online backups`,
      'use --mode cold, or upgrade MatrixOne',
    )
  }

  return {
    backupTime: summary.backupTime,
    backupTs: summary.backupTs,
    buildInfo: summary.buildInfo,
    elapsedMs: Date.now() - started,
    formatVersion: summary.formatVersion,
    serverVersion,
    size: summary.size,
    statement,
  }
}

/** MO refuses to overwrite a file, so a folder with files in it would fail half-way: refuse it now. */
async function checkFolderIsNew(dir: string): Promise<void> {
  let entries: string[]
  try {
    entries = await readdir(dir)
  } catch (error) {
    const {code} = error as NodeJS.ErrnoException
    if (code === 'ENOTDIR') throw usageError(`backup folder ${dir} is not a directory`)
    // ENOENT: MO creates it; anything else (e.g. not readable by us) is for mo-service to judge
    return
  }

  if (entries.length > 0) {
    throw usageError(
      `backup folder ${dir} is not empty`,
      'MatrixOne never overwrites a file of a backup: give a new or empty folder',
    )
  }
}

/** Asks the server to stop statement `threadId`; never throws, never waits long. */
async function killQuery(sql: SqlSettings, threadId: number | undefined): Promise<void> {
  if (!threadId) return
  let killer: Connection | undefined
  const attempt = (async () => {
    killer = await connectSql({
      connectTimeout: KILL_TIMEOUT_MS,
      host: sql.host,
      password: sql.password,
      port: sql.port,
      user: sql.user,
    })
    await killer.query(`kill query ${Number(threadId)}`)
  })()
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, KILL_TIMEOUT_MS)
  })
  await Promise.race([attempt, deadline]).catch(() => {})
  clearTimeout(timer)
  attempt.catch(() => {})
  killer?.destroy()
}

/**
 * `work`, or an `interrupted` BrError once `signal` aborts; `stop` runs (and is awaited) before
 * the rejection, so the caller never races the work it gave up on.
 */
function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined, stop: () => Promise<void>): Promise<T> {
  if (!signal) return work
  return new Promise<T>((resolve, reject) => {
    const interrupted = () => new BrError('interrupted', 'interrupted', {cause: signal.reason})
    const onAbort = () => {
      stop().then(
        () => reject(interrupted()),
        () => reject(interrupted()),
      )
    }

    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        if (!signal.aborted) reject(error)
      },
    )
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, {once: true})
  })
}

const quote = (value: string): string => `'${value.replaceAll('\\', '\\\\').replaceAll("'", String.raw`\'`)}'`

// eslint-disable-next-line no-control-regex -- that is the point
const hasControlCharacter = (value: string): boolean => /[\u0000-\u001F\u007F]/.test(value)

function hintsFor(error: unknown): string[] {
  const code = (error as {code?: unknown})?.code
  if (code === 'ER_ACCESS_DENIED_ERROR' || code === 'ER_DBACCESS_DENIED_ERROR') {
    return ['check --user and the password (--password-file or MO_PASSWORD)']
  }

  return ['check that MatrixOne is running and listening on --host/--port (mo_ctl status, its log)']
}
