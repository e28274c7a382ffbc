import {createServer, type Server, type Socket} from 'node:net'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BrError} from '../../../../src/lib/errors.js'
import {isAnsweringSql, listDatabases, waitForSql} from '../../../../src/lib/service/sql.js'
import {type SqlSettings} from '../../../../src/lib/service/types.js'
import {freePort} from '../../../helpers/net.js'

const at = (port: number, deadlineMs: number): SqlSettings => ({deadlineMs, host: '127.0.0.1', port, user: 'root'})

describe('sql', () => {
  let closedPort: number
  let silent: {close(): Promise<void>; port: number}

  beforeAll(async () => {
    closedPort = await freePort()
    silent = await silentServer()
  })
  afterAll(() => silent.close())

  describe('waitForSql', () => {
    it('gives up at the deadline on a closed port, naming host:port and the last error (exit 5)', async () => {
      const started = Date.now()
      const error = await waitForSql(at(closedPort, 700), {intervalMs: 100}).catch((error_: unknown) => error_)
      const elapsed = Date.now() - started
      expect(error).toBeInstanceOf(BrError)
      expect(error).toMatchObject({code: 'service', exitCode: 5})
      expect((error as Error).message).toBe(
        `service did not answer SQL on 127.0.0.1:${closedPort} within 700ms (last error: connect ECONNREFUSED 127.0.0.1:${closedPort})`,
      )
      expect((error as BrError).suggestions.join('\n')).toContain('--sql-timeout')
      expect(elapsed).toBeGreaterThanOrEqual(500)
      expect(elapsed).toBeLessThan(3000)
    })

    it('keeps to its deadline when a port accepts connections but never answers', async () => {
      const started = Date.now()
      await expect(waitForSql(at(silent.port, 800))).rejects.toThrow(/did not answer SQL .* within 800ms/)
      expect(Date.now() - started).toBeLessThan(3000)
    })

    it('stops waiting at once when aborted (exit 130)', async () => {
      const abort = new AbortController()
      setTimeout(() => abort.abort(), 200)
      const started = Date.now()
      await expect(waitForSql(at(silent.port, 30_000), {signal: abort.signal})).rejects.toMatchObject({
        code: 'interrupted',
        exitCode: 130,
      })
      expect(Date.now() - started).toBeLessThan(2000)
    })
  })

  describe('isAnsweringSql', () => {
    it('is false for a closed port and for a port that never answers', async () => {
      expect(await isAnsweringSql(at(closedPort, 0))).toBe(false)
      expect(await isAnsweringSql(at(silent.port, 0), {timeoutMs: 300})).toBe(false)
    })
  })

  describe('listDatabases', () => {
    it('fails as a service error naming host:port', async () => {
      await expect(listDatabases(at(closedPort, 0))).rejects.toMatchObject({
        code: 'service',
        message: expect.stringContaining(`could not list the databases on 127.0.0.1:${closedPort}`),
      })
    })
  })
})

/** Accepts TCP connections and never sends a handshake: a server stuck while starting. */
function silentServer(): Promise<{close(): Promise<void>; port: number}> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      resolve({
        close: () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy()
            server.close(() => done())
          }),
        port: typeof address === 'object' && address ? address.port : 0,
      })
    })
  })
}
