/**
 * A loopback MySQL-protocol server (mysql2's own server side) that plays MatrixOne for
 * runMoBackup: it answers `select version()` with a MatrixOne version string and hands every
 * other statement to the test. It accepts any login.
 */
import type {Server as NetServer} from 'node:net'

import mysql, {type Connection} from 'mysql2'

export const MO_VERSION = '8.0.30-MatrixOne-v2.0.2'

export interface FakeMo {
  close(): Promise<void>
  port: number
  /** every statement received, in order */
  statements: string[]
}

/** What to do with a statement other than `select version()`: write OK, an error, or nothing. */
export type StatementHandler = (statement: string, connection: Connection) => Promise<void> | void

export async function startFakeMo(handle: StatementHandler, version = MO_VERSION): Promise<FakeMo> {
  const statements: string[] = []
  const connections = new Set<Connection>()
  let nextId = 1
  const server = mysql.createServer((connection: Connection) => {
    connections.add(connection)
    connection.on('error', () => {})
    connection.on('end', () => connections.delete(connection))
    // mysql2's server side does not restart the packet sequence after a reply: do it, so the next
    // command (sequence 0) is in order and the replies to it start at 1.
    const writeOk = connection.writeOk.bind(connection)
    const writeError = connection.writeError.bind(connection)
    connection.writeOk = (args) => {
      writeOk(args)
      connection.sequenceId = 0
    }

    connection.writeError = (args) => {
      writeError(args)
      connection.sequenceId = 0
    }

    connection.serverHandshake({
      capabilityFlags: 0xff_ff_ff,
      characterSet: 8,
      connectionId: nextId++,
      protocolVersion: 10,
      serverVersion: version,
      statusFlags: 2,
    })
    connection.on('query', async (statement: string) => {
      statements.push(statement)
      if (/^select version\(\)/i.test(statement)) {
        writeVersion(connection, version)
        return
      }

      try {
        await handle(statement, connection)
      } catch (error) {
        connection.writeError({code: 1105, message: (error as Error).message})
      }
    })
  })

  const net = (server as unknown as {_server: NetServer})._server
  await new Promise<void>((resolve) => {
    net.listen(0, '127.0.0.1', () => resolve())
  })
  const address = net.address()
  const port = typeof address === 'object' && address ? address.port : 0
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const connection of connections) connection.destroy()
        net.close(() => resolve())
      }),
    port,
    statements,
  }
}

function writeVersion(connection: Connection, version: string): void {
  const raw = connection as unknown as {
    writeColumns(columns: unknown[]): void
    writeTextRow(row: unknown[]): void
  }
  raw.writeColumns([
    {
      catalog: 'def',
      characterSet: 33,
      columnLength: 384,
      columnType: 253,
      decimals: 0,
      flags: 0,
      name: 'version',
      orgName: '',
      orgTable: '',
      schema: '',
      table: '',
    },
  ])
  raw.writeTextRow([version])
  connection.writeEof()
  connection.sequenceId = 0
}
