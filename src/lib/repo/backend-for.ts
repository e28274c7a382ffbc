/**
 * Which backend holds a repository, chosen from its location (--path): a local directory now.
 * `s3://` is refused by name until the S3 backend exists, rather than taken for a directory
 * called "s3:". Opening the backend touches nothing: Repository connects it.
 */
import type {RepoBackend} from './backend.js'

import {usageError} from '../errors.js'
import {FsBackend} from './fs.js'

export function backendFor(location: string): RepoBackend {
  if (/^s3:\/\//i.test(location)) {
    throw usageError(
      `repository ${location}: S3 repositories are not supported yet`,
      'pass --path with a local directory (or a mounted share)',
    )
  }

  return new FsBackend(location)
}
