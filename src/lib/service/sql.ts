/**
 * Talks to the service over SQL (mysql2), only to learn whether it is up: readiness after a
 * start (`waitForSql`), the post-restore check (`listDatabases`), and a quick "is something
 * running there?" probe (`isAnsweringSql`).
 *
 * Guarantees: every connection is closed (or destroyed) before a function returns; no call
 * outlives its deadline by more than one connect attempt's timeout; an aborted signal ends a
 * wait at once with an `interrupted` BrError; failures are `service` BrErrors (exit 5) that name
 * host:port and carry the driver's last error.
 * Not: a connection pool or a general query layer (MatrixOne statements live in src/lib/mo), and
 * no judgement of the service's health beyond answering a trivial statement.
 */
import type {Connection, ConnectionOptions, RowDataPacket} from 'mysql2/promise'

import {connect} from 'node:net'

import {BrError, throwIfAborted} from '../errors.js'
import {formatDuration} from '../format.js'
import {lazyModule} from '../lazy.js'
import {redact} from '../redact.js'
import {type SqlSettings} from './types.js'

// mysql2 is loaded at the first connection: most commands never make one (see lib/lazy.ts).
const loadMysql = lazyModule('mysql2', async () => import('mysql2/promise'))

/** mysql2's createConnection, the driver imported on first use. */
export async function connectSql(options: ConnectionOptions): Promise<Connection> {
  const {createConnection} = await loadMysql()
  return createConnection(options)
}

export interface SqlReady {
  elapsedMs: number
  /** what `select version()` returned, e.g. 8.0.30-MatrixOne-v2.0.2 */
  version: string
}

export interface WaitForSqlOptions {
  /** pause between two attempts */
  intervalMs?: number
  signal?: AbortSignal
}

/** one attempt never waits longer than this, so a hung handshake cannot eat the whole deadline */
const ATTEMPT_TIMEOUT_MS = 5000
const LIST_TIMEOUT_MS = 30_000
const PROBE_TIMEOUT_MS = 3000

/**
 * Pings `select version()` until it answers or `settings.deadlineMs` has passed (at least one
 * attempt is made). Any error counts as "not ready yet", a refused login included: a starting
 * server may refuse logins until it has bootstrapped, and the last error is in the message.
 */
export async function waitForSql(settings: SqlSettings, options: WaitForSqlOptions = {}): Promise<SqlReady> {
  const {intervalMs = 250, signal} = options
  const started = Date.now()
  const deadline = started + settings.deadlineMs
  let lastError: unknown
  for (;;) {
    throwIfAborted(signal)
    const remaining = deadline - Date.now()
    try {
      // eslint-disable-next-line no-await-in-loop -- a retry loop: each attempt waits for the one before
      const version = await withConnection(settings, clamp(remaining, 250, ATTEMPT_TIMEOUT_MS), signal, async (c) => {
        const [rows] = await c.query<VersionRow[]>('select version() as version')
        return String(rows[0]?.version ?? '')
      })
      return {elapsedMs: Date.now() - started, version}
    } catch (error) {
      throwIfAborted(signal)
      lastError = error
    }

    if (Date.now() + intervalMs >= deadline) break
    // eslint-disable-next-line no-await-in-loop -- the pause between two attempts
    await sleep(intervalMs, signal)
  }

  const where = `${settings.host}:${settings.port}`
  throw new BrError(
    'service',
    `service did not answer SQL on ${where} within ${formatDuration(settings.deadlineMs)} (last error: ${describeError(lastError)})`,
    {cause: lastError, suggestions: hintsFor(lastError)},
  )
}

/** The databases the service shows (`show databases`), for the check after a restore. */
export async function listDatabases(settings: SqlSettings, options: {signal?: AbortSignal} = {}): Promise<string[]> {
  try {
    return await withConnection(settings, LIST_TIMEOUT_MS, options.signal, async (c) => {
      const [rows] = await c.query<DatabaseRow[]>('show databases')
      return rows.map((row) => String(Object.values(row)[0]))
    })
  } catch (error) {
    throwIfAborted(options.signal)
    throw new BrError(
      'service',
      `could not list the databases on ${settings.host}:${settings.port}: ${describeError(error)}`,
      {cause: error, suggestions: hintsFor(error)},
    )
  }
}

/**
 * One quick probe: does a MySQL-protocol server answer on host:port? A server that refuses the
 * login still counts as answering (it is running); a refused or silent port does not. Never
 * throws.
 */
export async function isAnsweringSql(settings: SqlSettings, options: {timeoutMs?: number} = {}): Promise<boolean> {
  const timeoutMs = options.timeoutMs ?? PROBE_TIMEOUT_MS
  const started = Date.now()
  // A closed port (the usual case: a cold backup with the service stopped) is told by a bare TCP
  // connect, without loading the driver; whatever accepts one gets the real SQL probe.
  if (!(await acceptsTcp(settings, timeoutMs))) return false
  try {
    await withConnection(settings, Math.max(1, timeoutMs - (Date.now() - started)), undefined, (c) =>
      c.query('select 1'),
    )
    return true
  } catch (error) {
    return serverAnswered(error)
  }
}

/** Whether something accepts a TCP connection on host:port within `timeoutMs`. Never throws. */
async function acceptsTcp(settings: SqlSettings, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({host: settings.host, port: settings.port})
    const done = (accepted: boolean) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(accepted)
    }

    const timer = setTimeout(() => done(false), timeoutMs)
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

type VersionRow = RowDataPacket & {version: unknown}
type DatabaseRow = RowDataPacket

/**
 * Opens a connection, runs `work`, closes it. The whole of it (connect included) is bounded by
 * `timeoutMs` and by `signal`: on either, the connection is destroyed and the call rejects.
 */
function withConnection<T>(
  settings: SqlSettings,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  work: (connection: Connection) => Promise<T>,
): Promise<T> {
  let connection: Connection | undefined
  let gaveUp = false
  const attempt = (async () => {
    connection = await connectSql({
      connectTimeout: timeoutMs,
      host: settings.host,
      password: settings.password,
      port: settings.port,
      user: settings.user,
    })
    if (gaveUp) {
      connection.destroy()
      throw new Error('gave up')
    }

    try {
      return await work(connection)
    } finally {
      await connection.end().catch(() => connection?.destroy())
    }
  })()

  return new Promise<T>((resolve, reject) => {
    const giveUp = (error: unknown) => {
      gaveUp = true
      connection?.destroy()
      finish()
      reject(error)
    }

    const timer = setTimeout(
      () => giveUp(Object.assign(new Error(`no answer within ${formatDuration(timeoutMs)}`), {code: 'ETIMEDOUT'})),
      timeoutMs,
    )
    const onAbort = () => giveUp(signal?.reason)
    const finish = () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }

    if (signal?.aborted) {
      onAbort()
      return
    }

    signal?.addEventListener('abort', onAbort, {once: true})
    attempt.then(
      (value) => {
        finish()
        resolve(value)
      },
      (error: unknown) => {
        finish()
        reject(error)
      },
    )
  })
}

/** A server-side error (it has an SQLSTATE) means a server read our handshake and answered. */
function serverAnswered(error: unknown): boolean {
  return typeof (error as {sqlState?: unknown})?.sqlState === 'string'
}

/**
 * The driver's message in one line, less any secret we know of (mysql2 does not put the password
 * in its messages, but a server's may echo a statement). Node's dual-stack connect (e.g. to
 * `localhost`) fails with an AggregateError whose own message is empty: use the inner errors then.
 */
export function describeError(error: unknown): string {
  if (error instanceof AggregateError && !error.message) {
    return [...new Set(error.errors.map((e) => describeError(e)))].join('; ')
  }

  if (error instanceof Error) return redact(error.message || (error as NodeJS.ErrnoException).code || error.name)
  return redact(String(error))
}

function hintsFor(error: unknown): string[] {
  const code = (error as {code?: unknown})?.code
  if (code === 'ER_ACCESS_DENIED_ERROR' || code === 'ER_DBACCESS_DENIED_ERROR') {
    return ['check --user and the password (--password-file or MO_PASSWORD)']
  }

  if (serverAnswered(error)) return ['the service answers but refuses the statement: check its log']
  return [
    'check that the service is running and listening on --host/--port (mo_ctl status, its log)',
    'if it only needs longer to start, raise --sql-timeout',
  ]
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer)
      reject(new BrError('interrupted', 'interrupted', {cause: signal?.reason}))
    }

    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, {once: true})
  })
}

const clamp = (value: number, min: number, max: number) => Math.min(max, Math.max(min, value))
