/**
 * What a path may be in a backup: the one safe-relative-path check (archive entries, manifests,
 * and the paths MatrixOne's BACKUP folder names in tae_list), and where a symlink leads.
 *
 * Guarantees: pure functions, no I/O. A path that passes `isSafePath` names something inside the
 * directory it is joined to, whatever directory that is; a link that passes `symlinkStaysInside`
 * stays inside on its own, and `resolveSymlink` / `findEscapingSymlink` follow every link of a
 * tree as the kernel does, so links that lead out only together are found too. It does not look
 * at the disk: what is already in a destination is the tree writer's to check.
 */
import {posix} from 'node:path'

export interface SafePathOptions {
  /**
   * Refuse backslashes too. On Linux `\` is an ordinary character of a name, so a data dir may hold
   * one; MatrixOne writes tae_list with '/' only, so a `\` there means a folder from elsewhere.
   */
  refuseBackslash?: boolean
}

/**
 * A path that stays where it is put: relative, '/'-separated, no empty, '.' or '..' segment, no
 * NUL. Extraction relies on this (nothing can be named outside the destination).
 */
export function isSafePath(path: string, options: SafePathOptions = {}): boolean {
  if (path === '' || path.startsWith('/') || path.includes('\0')) return false
  if (options.refuseBackslash && path.includes('\\')) return false
  return path.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..')
}

/** A symlink's target, resolved from the link's own directory, stays inside the root (and is relative). */
export function symlinkStaysInside(linkPath: string, target: string): boolean {
  if (target === '' || target.includes('\0') || posix.isAbsolute(target)) return false
  const resolved = posix.normalize(posix.join(posix.dirname(linkPath), target))
  return resolved !== '..' && !resolved.startsWith('../')
}

/** Symlinks followed in one resolution before giving up, as Linux does (ELOOP after 40). */
const MAX_LINK_HOPS = 40

/**
 * Where the symlink at `linkPath` really leads once every symlink of the tree is followed, as
 * the kernel resolves it: `links` maps each symlink's path (relative to the root) to its target,
 * the link itself included. 'outside' when some step climbs above the root (`s/l -> ..`, then
 * `x -> s/l/s/l/../..` passes a lexical check but leads two levels up), 'loop' when more than 40
 * links are followed (the kernel would refuse it too), 'inside' otherwise. Pure: the caller
 * decides which links make up the tree; the cost is the length of the walk, not the tree's size.
 */
export function resolveSymlink(links: ReadonlyMap<string, string>, linkPath: string): 'inside' | 'loop' | 'outside' {
  const target = links.get(linkPath)
  if (target === undefined) return 'inside'
  const at = linkPath.split('/').slice(0, -1)
  // Components still to walk, the next one last.
  const todo = target.split('/').reverse()
  let hops = 0
  while (todo.length > 0) {
    const part = todo.pop()!
    if (part === '' || part === '.') continue
    if (part === '..') {
      if (at.length === 0) return 'outside'
      at.pop()
      continue
    }

    at.push(part)
    const next = links.get(at.join('/'))
    if (next === undefined) continue
    if (++hops > MAX_LINK_HOPS) return 'loop'
    if (next.startsWith('/')) return 'outside'
    // Replace the link by its target, read from the link's own directory.
    at.pop()
    for (const p of next.split('/').reverse()) todo.push(p)
  }

  return 'inside'
}

/** The first symlink of `links` that leads outside or loops, with why; undefined when all stay inside. */
export function findEscapingSymlink(links: ReadonlyMap<string, string>): undefined | {path: string; why: string} {
  for (const path of links.keys()) {
    const where = resolveSymlink(links, path)
    if (where === 'outside')
      return {path, why: `through the symlinks of the tree it leads outside the data directory (${links.get(path)})`}
    if (where === 'loop') return {path, why: `it is part of a loop of symlinks (${links.get(path)})`}
  }

  return undefined
}
