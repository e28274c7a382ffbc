/**
 * Reads a one-line secret from a file named on the command line (`--password-file`): what the
 * safe alternative to a secret in argv, visible in `ps` to every user, is made of.
 *
 * Guarantees: only a regular file is read (a directory, a FIFO, a socket or a device is refused
 * by name, and opening never blocks on a FIFO swapped in at the last moment); at most
 * MAX_SECRET_BYTES are read; the final newline (`echo secret > file`) is not part of the secret;
 * an empty file or one of several lines is refused rather than sent as a wrong password. Errors
 * are usage BrErrors (exit 2) naming the file and never its content. The value is registered with
 * ../redact.ts, so no message or debug line can print it afterwards.
 * Not: a check of who may read the file (that is the operator's chmod), nor a parser of keys.
 */
import {closeSync, constants, fstatSync, openSync, readSync} from 'node:fs'

import {BrError, usageError} from './errors.js'
import {registerSecret} from './redact.js'

/** A password or passphrase is a line, not a document. */
export const MAX_SECRET_BYTES = 64 * 1024

/**
 * The secret on the file's only line. Synchronous: it is read once, before anything starts, and a
 * regular file of at most 64 KiB cannot stall the event loop. `what` names the flag, e.g.
 * '--password-file'.
 */
export function readSecretLine(file: string, what: string): string {
  const text = readSecretText(file, what).replace(/\r?\n$/, '')
  if (text.length === 0) {
    throw usageError(`${what} ${file} is empty`, 'write the secret on its first line')
  }

  if (/[\r\n]/.test(text)) {
    throw usageError(
      `${what} ${file} holds more than one line`,
      'write the secret alone on the first line of the file, with nothing after it',
    )
  }

  registerSecret(text)
  return text
}

/**
 * A small secret file's whole text (a key file: comments and key lines), with the same care:
 * a regular file only, at most MAX_SECRET_BYTES, errors naming the file and never its content.
 */
export function readSecretText(file: string, what: string, options: {shownAs?: string} = {}): string {
  // `shownAs`: how messages name the file when its path may itself be a secret (an environment value).
  const shown = options.shownAs ?? `${what} ${file}`
  let fd: number
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, for ever.
    // eslint-disable-next-line no-bitwise -- open(2) flags are a bit set
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY)
  } catch (error) {
    throw openError(error, shown, options.shownAs ? 'the file' : file)
  }

  try {
    const stat = fstatSync(fd)
    if (!stat.isFile()) {
      throw usageError(
        `${shown} is ${kindOf(stat)}, not a regular file`,
        `write the secret into a regular file (mode 0600) and pass its path`,
      )
    }

    if (stat.size > MAX_SECRET_BYTES) {
      throw usageError(
        `${shown} is ${stat.size} bytes, more than a secret or key file holds (${MAX_SECRET_BYTES})`,
        'check the path: it should name a small key or secret file',
      )
    }

    const buffer = Buffer.alloc(MAX_SECRET_BYTES + 1)
    let length = 0
    for (;;) {
      const n = readSync(fd, buffer, length, buffer.length - length, null)
      if (n === 0) break
      length += n
      if (length > MAX_SECRET_BYTES) throw usageError(`${shown} is too large for a secret or key file`)
    }

    return buffer.subarray(0, length).toString('utf8')
  } finally {
    closeSync(fd)
  }
}

/** `shown` names the file in the message, `file` in the hint ("the file" when its path must not be printed). */
function openError(error: unknown, shown: string, file: string): BrError {
  const {code} = error as NodeJS.ErrnoException
  const why =
    code === 'ENOENT'
      ? 'no such file'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'ENOTDIR'
          ? 'a part of the path is not a directory'
          : (code ?? 'cannot open it')
  return new BrError('usage', `cannot read ${shown}: ${why}`, {
    cause: error,
    suggestions: [
      code === 'EACCES' || code === 'EPERM'
        ? `let the user running the command read it (chmod 600 ${file}, owned by that user)`
        : 'check the path: it must name a readable regular file',
    ],
  })
}

function kindOf(stat: {isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean}): string {
  if (stat.isDirectory()) return 'a directory'
  if (stat.isFIFO()) return 'a FIFO'
  if (stat.isSocket()) return 'a socket'
  return 'a device or special file'
}
