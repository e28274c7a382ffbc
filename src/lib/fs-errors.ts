/**
 * One mapping from a filesystem error (EACCES, EPERM, EROFS, ENOSPC, EDQUOT, ENOTDIR, EISDIR) on a
 * path the user gave (the repository, the data directory, a staging or clone directory, a key
 * file) to a sentence that names that path, what failed, and what to do, with the exit code of
 * the table in errors.ts: 2 for a path that is wrong or cannot be written (the user can fix the
 * argument), 1 for a filesystem that filled up under a run (with how much was needed and how much
 * is free).
 *
 * The flows wrap their steps with `explainingFsErrors`, so every step gets the same treatment and
 * no step sprinkles its own. Guarantees: an error that is not one of these codes, or whose path is
 * none of the known ones, passes through unchanged (never a wrong explanation); a BrError is never
 * rewritten. Not: a retry, or a check made in advance (the flows' checks do that).
 */
import {constants} from 'node:fs'
import {access, stat, statfs} from 'node:fs/promises'
import {dirname, sep} from 'node:path'

import type {Flow} from './steps.js'

import {BrError, isBrError} from './errors.js'
import {formatBytes} from './format.js'

export interface KnownPath {
  /** the flag that names it, for the hint: '--path', '--data-dir', '--clone-dir', '--identity' */
  flag?: string
  path: string
  /** what it is, in words: 'repository', 'data directory', 'staging directory' */
  role: string
}

export interface FsErrorContext {
  /** for ENOSPC: how many bytes the step needed there, when known */
  needed?: number
  /** what the needed bytes are, e.g. 'the files to pack (less once compressed)' */
  neededWhat?: string
  paths: KnownPath[]
  /** where the step writes, for an error that names no path (a stream's write) */
  writing?: KnownPath
}

const CODES = new Set(['EACCES', 'EDQUOT', 'EISDIR', 'ENOSPC', 'ENOTDIR', 'EPERM', 'EROFS'])

/** The error as a BrError with a sentence and a hint when it is one of ours on a known path; else the error itself. */
export async function explainFsError(error: unknown, context: FsErrorContext): Promise<unknown> {
  if (isBrError(error) || !(error instanceof Error)) return error
  const {code, dest, path, syscall} = await diagnose(error as NodeJS.ErrnoException & {dest?: string})
  if (!code || !CODES.has(code)) return error
  // copyfile and rename name two paths: a full or read-only filesystem is the destination's fault.
  const at = dest && ['EDQUOT', 'ENOSPC', 'EROFS'].includes(code) ? dest : (path ?? dest)
  const known = at ? knownPathOf(at, context.paths) : context.writing
  if (!known) return error
  const where = at && at !== known.path ? ` (${syscall ?? 'access'} ${at})` : syscall ? ` (${syscall})` : ''
  const said = await sentence(code, {at: at ?? known.path, context, known, where})
  return new BrError(said.exit, said.message, {cause: error, suggestions: [said.hint]})
}

/** What to say about `code` on a known path: the exit code's name, the message, the hint. */
async function sentence(
  code: string,
  {at, context, known, where}: {at: string; context: FsErrorContext; known: KnownPath; where: string},
): Promise<{exit: 'error' | 'usage'; hint: string; message: string}> {
  const name = `${known.role} ${known.path}`
  const other = known.flag ? `pass ${known.flag} with another one` : 'choose another path'
  switch (code) {
    case 'EACCES':
    case 'EPERM': {
      const uid = process.getuid?.() ?? '?'
      return {
        exit: 'usage',
        hint: `let the user running moctl (uid ${uid}) read and write it, or ${other}`,
        message: `${name}: permission denied${where}`,
      }
    }

    case 'EDQUOT':
    case 'ENOSPC': {
      const free = await freeBytesNear(at)
      const what = code === 'EDQUOT' ? 'disk quota exceeded' : 'no space left'
      const {needed, neededWhat} = context
      const need = needed === undefined ? '' : `: needed ${formatBytes(needed)}${neededWhat ? ` (${neededWhat})` : ''}`
      return {
        exit: 'error',
        hint: `free some space there, or ${other} on a filesystem with room; what this run wrote was removed`,
        message: `${what} on ${name}${where}${need}, ${free === null ? 'free space unknown' : `${formatBytes(free)} free`}`,
      }
    }

    case 'EISDIR': {
      return {
        exit: 'usage',
        hint: `check the path: ${known.flag ? `${known.flag} must name` : 'it must name'} a file`,
        message: `${name}: ${at} is a directory where a file was expected${where}`,
      }
    }

    case 'ENOTDIR': {
      return {
        exit: 'usage',
        hint: `check the path, or ${other}`,
        message: `${name}: a part of the path is a file, not a directory${where}`,
      }
    }

    default: {
      return {
        exit: 'usage',
        hint: `mount it read-write, or ${other}`,
        message: `${name} is on a read-only filesystem${where}`,
      }
    }
  }
}

/** The flow with each step's filesystem errors explained (explainFsError), as the context says. */
export function explainingFsErrors<C>(flow: Flow<C>, context: (ctx: C) => FsErrorContext): Flow<C> {
  return {
    ...flow,
    steps: flow.steps.map((step) => ({
      ...step,
      async run(ctx, report, signal) {
        try {
          await step.run(ctx, report, signal)
        } catch (error) {
          throw await explainFsError(error, context(ctx))
        }
      },
    })),
  }
}

/**
 * Node's recursive mkdir reports ENOENT where the real cause is a read-only or forbidden parent:
 * ask the nearest existing ancestor whether it can be written (access(2) says EROFS or EACCES).
 */
async function diagnose(
  error: NodeJS.ErrnoException & {dest?: string},
): Promise<Pick<NodeJS.ErrnoException, 'code' | 'path' | 'syscall'> & {dest?: string}> {
  if (error.code !== 'ENOENT' || error.syscall !== 'mkdir' || !error.path) return error
  for (let dir = dirname(error.path); dir !== dirname(dir); dir = dirname(dir)) {
    // eslint-disable-next-line no-await-in-loop -- walks up to the nearest existing directory
    const found = await stat(dir).catch(() => null)
    if (!found) continue
    if (!found.isDirectory()) return {code: 'ENOTDIR', path: error.path, syscall: 'mkdir'}
    // eslint-disable-next-line no-await-in-loop -- one check, on the first existing ancestor
    const denied = await access(dir, constants.W_OK).then(
      () => null,
      (error_: NodeJS.ErrnoException) => error_.code,
    )
    return denied && CODES.has(denied) ? {code: denied, path: error.path, syscall: 'mkdir'} : error
  }

  return error
}

/** The known path that holds `at`: the longest one that is `at` or one of its ancestors. */
function knownPathOf(at: string, paths: KnownPath[]): KnownPath | undefined {
  const inside = (p: string) => at === p || at.startsWith(p.endsWith(sep) ? p : p + sep)
  return paths
    .filter((p) => p.path && inside(p.path))
    .sort((a, b) => b.path.length - a.path.length)
    .at(0)
}

async function freeBytesNear(path: string): Promise<null | number> {
  for (let dir = path; ; dir = dirname(dir)) {
    try {
      // eslint-disable-next-line no-await-in-loop -- walks up to the nearest existing directory
      const fs = await statfs(dir)
      return fs.bavail * fs.bsize
    } catch {
      if (dir === dirname(dir)) return null
    }
  }
}
