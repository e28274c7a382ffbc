import {describe, expect, it, vi} from 'vitest'

import {SECRET_ENV} from '../../../../src/lib/redact.js'
import {lastLine, runShell} from '../../../../src/lib/service/spawn.js'

describe('spawn', () => {
  describe('runShell', () => {
    it('reports the exit code and the output of a command', async () => {
      const result = await runShell('echo out; echo err >&2; exit 7')
      expect(result).toMatchObject({
        aborted: false,
        exitCode: 7,
        signal: null,
        stderr: 'err\n',
        stdout: 'out\n',
        timedOut: false,
      })
    })

    it('returns when the shell exits, even if a daemon it started still holds the pipes', async () => {
      // A start command that forgets to redirect its daemon's output must not hang us.
      const started = Date.now()
      const result = await runShell('sleep 3 & echo launched')
      expect(result.exitCode).toBe(0)
      expect(result.stdout).toBe('launched\n')
      expect(Date.now() - started).toBeLessThan(2000)
    })

    it('keeps only the tail of a long output', async () => {
      const result = await runShell('i=0; while [ $i -lt 3000 ]; do echo "line $i" >&2; i=$((i+1)); done')
      expect(result.stderr.length).toBeLessThanOrEqual(8192)
      expect(lastLine(result.stderr)).toBe('line 2999')
    })

    it('escalates to SIGKILL when the command ignores SIGTERM', async () => {
      const started = Date.now()
      const result = await runShell("trap '' TERM; while :; do sleep 0.1; done", {killGraceMs: 300, timeoutMs: 200})
      expect(result.timedOut).toBe(true)
      expect(result.signal).toBe('SIGKILL')
      expect(Date.now() - started).toBeLessThan(3000)
    })
  })

  describe('the environment of a command', () => {
    it('never holds a secret variable, from process.env or from the env passed in', async () => {
      const secrets = Object.fromEntries(SECRET_ENV.map((name) => [name, `secret-of-${name}`]))
      for (const [name, value] of Object.entries(secrets)) vi.stubEnv(name, value)
      const inherited = await runShell('env')
      const passed = await runShell('env', {env: {...secrets, KEEP_ME: 'kept'}})
      for (const result of [inherited, passed]) {
        for (const name of SECRET_ENV) expect(result.stdout).not.toContain(`${name}=`)
        expect(result.stdout).not.toContain('secret-of-')
      }

      expect(passed.stdout).toContain('KEEP_ME=kept')
      expect(inherited.stdout).toContain(`PATH=${process.env.PATH}`)
    })
  })

  describe('lastLine', () => {
    it('is the last non-empty line', () => {
      expect(lastLine('a\nb\r\n\n  \n')).toBe('b')
      expect(lastLine('')).toBe('')
    })
  })
})
