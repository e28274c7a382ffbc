/**
 * What the MO stand-in does with `BACKUP … S3OPTION {…}`: reads the options as MO's
 * pkg/backup/utils.go `getS3Config` does (key=value pairs, keys case-insensitive), and writes the
 * BACKUP layout (fixture.ts) under `filepath` in `bucket` of the S3 server at `endpoint`, raw or
 * CRC-framed, with the credentials the statement gave.
 */
import {readdir, readFile} from 'node:fs/promises'
import {join, relative} from 'node:path'

import {S3Backend} from '../../../../src/lib/repo/s3.js'
import {tempDir} from '../../../helpers/cli.js'
import {type BackupFolderOptions, writeBackupFolder} from './fixture.js'

/** The S3OPTION pairs of a statement, keys lowercased; null when it has none. */
export function parseS3Option(statement: string): null | Record<string, string> {
  const body = /S3OPTION \{(.*)\}/.exec(statement)?.[1]
  if (body === undefined) return null
  const out: Record<string, string> = {}
  for (const match of body.matchAll(/'((?:[^'\\]|\\.)*)'='((?:[^'\\]|\\.)*)'/g)) {
    out[match[1].toLowerCase()] = match[2].replaceAll(/\\(.)/g, '$1')
  }

  return out
}

/** Writes a BACKUP folder as MO would into the bucket the options name; returns the keys written. */
export async function writeBackupToS3(option: Record<string, string>, folder: BackupFolderOptions): Promise<string[]> {
  const tmp = await tempDir('moctl-br-fake-mo-s3-')
  try {
    await writeBackupFolder(tmp.path, folder)
    const prefix = `${option.filepath}/`
    const backend = new S3Backend({
      location: `s3://${option.bucket}/${option.filepath}`,
      s3: {
        bucket: option.bucket,
        credentials: {accessKeyId: option.access_key_id, secretAccessKey: option.secret_access_key},
        endpoint: option.endpoint,
        forcePathStyle: option.is_minio === 'true',
        prefix,
        region: option.region,
      },
    })
    const keys = await filesUnder(tmp.path)
    for (const key of keys) {
      await backend.save(key, await readFile(join(tmp.path, key)))
    }

    return keys
  } finally {
    await tmp.cleanup()
  }
}

async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, {recursive: true, withFileTypes: true})
  return entries.filter((e) => e.isFile()).map((e) => relative(root, join(e.parentPath, e.name)))
}
