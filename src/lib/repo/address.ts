/**
 * Where a repository is, as the commands hand it to the library: a local directory, or a bucket
 * and key prefix of an S3-compatible store with the settings to reach it. Built once from the
 * flags (src/flags.ts, s3Flags), carried in options as `repo`, turned into a backend by
 * backend-for.ts.
 *
 * Guarantees: `location` is what messages name (an absolute directory, or s3://BUCKET/PREFIX): it
 * never holds a credential. Secrets live only in `s3.credentials`, which nothing prints.
 */

/** S3 Object Lock retention for every object a backup writes (--object-lock-days). */
export interface ObjectLockSettings {
  days: number
  mode: 'COMPLIANCE' | 'GOVERNANCE'
}

/** How to reach an S3-compatible repository. Unset fields fall to the AWS SDK's defaults and chain. */
export interface S3Settings {
  bucket: string
  /** static keys (--access-key-id with --secret-access-key-file); absent: the AWS credential chain */
  credentials?: {accessKeyId: string; secretAccessKey: string; sessionToken?: string}
  /** https://host:port of a non-AWS store (MinIO, OSS, COS, Ceph); absent: AWS for the region */
  endpoint?: string
  /** path-style addressing (http://host/bucket/key), which MinIO and most on-premises stores need */
  forcePathStyle: boolean
  objectLock?: ObjectLockSettings
  /** the key prefix the repository lives under: '' (the bucket's root) or 'a/b/' (always ends in '/') */
  prefix: string
  /** a shared config/credentials file profile (--profile) */
  profile?: string
  region?: string
  /** a role to assume with the chain's credentials (mo_br's --role_arn) */
  roleArn?: string
}

export interface RepoAddress {
  /** as messages name it: an absolute directory, or s3://BUCKET/PREFIX; never a secret */
  location: string
  /** set exactly when the repository is in an S3-compatible store */
  s3?: S3Settings
}

const S3_URL = /^s3:\/\/([^/]+)\/?(.*)$/i

/** True when a --path names an S3 location. */
export const isS3Location = (location: string): boolean => /^s3:\/\//i.test(location)

/** Bucket and key prefix of s3://BUCKET/PREFIX; null when it is not a well-formed S3 location. */
export function parseS3Location(location: string): null | {bucket: string; prefix: string} {
  const match = S3_URL.exec(location)
  if (!match) return null
  const [, bucket, rest] = match
  const parts = rest.split('/').filter(Boolean)
  if (parts.some((part) => part === '.' || part === '..')) return null
  return {bucket, prefix: parts.length > 0 ? parts.join('/') + '/' : ''}
}

/** The address of a local repository directory (already resolved to an absolute path). */
export const localRepo = (path: string): RepoAddress => ({location: path})
