/**
 * Which backend holds a repository, chosen from its address (address.ts): a local directory, or
 * an S3-compatible store for s3://BUCKET/PREFIX. Opening the backend touches nothing and loads
 * nothing heavy (the AWS SDK loads at the S3 backend's first request): Repository connects it.
 */
import type {RepoBackend} from './backend.js'

import {usageError} from '../errors.js'
import {isS3Location, parseS3Location, type RepoAddress} from './address.js'
import {FsBackend} from './fs.js'
import {S3Backend} from './s3.js'

export function backendFor(repo: RepoAddress | string): RepoBackend {
  const address = typeof repo === 'string' ? {location: repo} : repo
  if (address.s3) return new S3Backend({location: address.location, s3: address.s3})
  if (isS3Location(address.location)) {
    // No settings came with it (a library caller): the bucket and prefix from the URL, the rest
    // from the AWS SDK's defaults and credential chain (environment, profile, role).
    const parsed = parseS3Location(address.location)
    if (!parsed)
      throw usageError(`repository ${address.location} is not a valid S3 location`, 'pass --path s3://BUCKET/PREFIX')
    return new S3Backend({location: address.location, s3: {...parsed, forcePathStyle: false}})
  }

  return new FsBackend(address.location)
}
