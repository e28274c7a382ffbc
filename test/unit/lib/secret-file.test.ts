import {execFileSync} from 'node:child_process'
import {mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {redact} from '../../../src/lib/redact.js'
import {MAX_SECRET_BYTES, readSecretLine} from '../../../src/lib/secret-file.js'
import {tempDir, type TempDir} from '../../helpers/cli.js'

describe('readSecretLine', () => {
  let tmp: TempDir
  let dir: string
  beforeAll(async () => {
    tmp = await tempDir('moctl-br-secret-file-')
    dir = tmp.path
  })
  afterAll(() => tmp?.cleanup())

  const file = async (name: string, content: Buffer | string) => {
    const path = join(dir, name)
    await writeFile(path, content, {mode: 0o600})
    return path
  }

  it('reads the one line, without its final newline (LF or CRLF), and registers it for redaction', async () => {
    expect(readSecretLine(await file('lf', 'pw-Line-One\n'), '--password-file')).toBe('pw-Line-One')
    expect(readSecretLine(await file('crlf', 'pw-Crlf\r\n'), '--password-file')).toBe('pw-Crlf')
    expect(readSecretLine(await file('bare', ' spaces kept '), '--password-file')).toBe(' spaces kept ')
    expect(redact('login as root with pw-Line-One', {})).toBe('login as root with ***')
  })

  it.each([
    ['empty', '', /^--password-file .*empty is empty$/],
    ['newline only', '\n', /is empty$/],
    ['two lines', 'first\nsecond\n', /holds more than one line$/],
    [
      'too large',
      Buffer.alloc(MAX_SECRET_BYTES + 1, 'a'),
      /is 65537 bytes, more than a secret or key file holds \(65536\)$/,
    ],
  ])('refuses a file that is %s (exit 2), never printing its content', async (name, content, message) => {
    const path = await file(name.replaceAll(' ', '-'), content)
    let error: unknown
    try {
      readSecretLine(path, '--password-file')
    } catch (error_) {
      error = error_
    }

    expect(error).toMatchObject({exitCode: 2, message: expect.stringMatching(message)})
    expect((error as Error).message).not.toContain('second')
  })

  it('refuses a missing file, a directory and a FIFO by name, without blocking on the FIFO', async () => {
    const missing = join(dir, 'nope')
    expect(() => readSecretLine(missing, '--password-file')).toThrow(
      `cannot read --password-file ${missing}: no such file`,
    )
    const sub = join(dir, 'sub')
    await mkdir(sub)
    expect(() => readSecretLine(sub, '--password-file')).toThrow(
      `--password-file ${sub} is a directory, not a regular file`,
    )
    const fifo = join(dir, 'fifo')
    execFileSync('mkfifo', [fifo])
    const started = Date.now()
    expect(() => readSecretLine(fifo, '--password-file')).toThrow(
      `--password-file ${fifo} is a FIFO, not a regular file`,
    )
    expect(Date.now() - started).toBeLessThan(1000)
    const plain = await file('plain', 'x')
    expect(() => readSecretLine(join(plain, 'below'), '--password-file')).toThrow(
      /a part of the path is not a directory$/,
    )
  })
})
