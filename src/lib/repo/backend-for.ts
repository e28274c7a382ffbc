/**
 * Which backend holds a repository, chosen from its address (address.ts): a local directory, or
 * an S3-compatible store for s3://BUCKET/PREFIX. Opening the backend touches nothing: Repository
 * connects it.
 */
import type {RepoBackend} from './backend.js'

import {usageError} from '../errors.js'
import {isS3Location, type RepoAddress} from './address.js'
import {FsBackend} from './fs.js'

export function backendFor(repo: RepoAddress | string): RepoBackend {
  const address = typeof repo === 'string' ? {location: repo} : repo
  if (address.s3 || isS3Location(address.location)) {
    throw usageError(
      `repository ${address.location}: S3 repositories are not supported yet`,
      'pass --path with a local directory (or a mounted share)',
    )
  }

  return new FsBackend(address.location)
}
