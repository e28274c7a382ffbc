/**
 * Whether two directories the user gave overlap: the same, or one inside the other. A repository
 * inside the data directory would put every backup into the next one; a restore target that holds
 * the repository would move it aside (and delete it with --discard-old).
 *
 * Paths are compared as they really are: symlinks resolved, and a path that does not exist yet
 * resolved through its nearest existing ancestor (a repository that backup will create is where
 * that ancestor really is). Not: a guard against bind mounts or hard links of directories, which
 * realpath cannot see through.
 */
import {realpath} from 'node:fs/promises'
import {basename, dirname, join, relative, resolve, sep} from 'node:path'

/** The real path of `path`, whose tail may not exist yet. */
export async function realPath(path: string): Promise<string> {
  const abs = resolve(path)
  const tail: string[] = []
  for (let dir = abs; ; dir = dirname(dir)) {
    try {
      // eslint-disable-next-line no-await-in-loop -- walks up to the nearest existing ancestor
      return join(await realpath(dir), ...tail.reverse())
    } catch (error) {
      const {code} = error as NodeJS.ErrnoException
      // ENOTDIR: a file where a directory is expected; the caller's own checks name it.
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || dir === dirname(dir)) return abs
      tail.push(basename(dir))
    }
  }
}

/** 'same', 'inside' (a is inside b), 'contains' (b is inside a), or null, by real paths. */
export async function overlap(a: string, b: string): Promise<'contains' | 'inside' | 'same' | null> {
  const [ra, rb] = await Promise.all([realPath(a), realPath(b)])
  if (ra === rb) return 'same'
  if (isInside(ra, rb)) return 'inside'
  if (isInside(rb, ra)) return 'contains'
  return null
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child)
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !rel.startsWith(sep)
}
