/**
 * Builds a folder shaped like the output of MatrixOne's `BACKUP ... FILESYSTEM '<dir>'`, the way
 * pkg/backup writes it:
 *
 *   mo_meta (+ .sha256)                    ETL fileservice: raw bytes, raw 32-byte sidecar
 *   config/launch.toml_<uuidv7> (+ .sha256)
 *   config/cn.toml_<uuidv7> (+ .sha256)
 *   hakeeper/hk_data (+ .sha256)           backup LocalFS: CRC-framed when `framed` (legacy DISK)
 *   tae/tae_list, tae/tae_sum (+ .sha256)
 *   tae/<uuid>_00000 …                     objects, no sidecar: their SHA-256 is in tae_list
 *   tae/ckp/meta_<start>_<end>.ckp         checkpoint metadata, no sidecar
 *   tae/gc/gc_<start>_<end>.fgc            GC metadata, no sidecar
 *
 * The contents are made-up bytes (MO objects are not parsed by anything under test); names,
 * CSV lines and digests are as MO writes them.
 */
import {createHash} from 'node:crypto'
import {mkdir, writeFile} from 'node:fs/promises'
import {dirname, join} from 'node:path'

import {frame} from '../../../../src/lib/mo/framing.js'

export const FULL_TS = '1715745404915410000-1'
export const INCREMENTAL_TS = '1715754578690660000-1'

export const OBJECTS = [
  '018f7a41-1881-7999-bbd6-858c3d4acc18_00000',
  '018f7a41-1c3e-7a02-8f1d-2f6c1b9e4d77_00000',
  '018f7a42-05aa-7d11-a3c4-9e2b7f0c5a13_00001',
]
export const CKP = `ckp/meta_0-0_${FULL_TS}.ckp`
/** the checkpoint MO rewrites while copying: listed without a SHA-256 */
export const REWRITTEN_CKP = `ckp/meta_${FULL_TS}_${FULL_TS}.ckp`
export const GC = `gc/gc_0-0_${FULL_TS}.fgc`
export const LAUNCH = 'config/launch.toml_018f7a50-d300-7017-8580-150edf08733e'
export const CN = 'config/cn.toml_018f7a50-d30c-7ed0-85bc-191e9f1eb753'

export interface BackupFolderOptions {
  /** write tae/ and hakeeper/ CRC-framed, as MO's legacy DISK backend does (default true) */
  framed?: boolean
  /** objects this incremental leaves to its base: listed with needCopy=false, not written */
  inBase?: string[]
  /** names of the objects to write instead of OBJECTS (contents seeded by name) */
  objects?: string[]
  /** fields of tae/tae_sum; default a full backup at FULL_TS */
  taeSum?: string
}

export interface BackupFolder {
  /** relative path → content bytes (before framing) of every file written, sidecars excluded */
  contents: Map<string, Buffer>
}

export const sha256 = (bytes: Buffer): Buffer => createHash('sha256').update(bytes).digest()

/** Deterministic filler bytes of a given size. */
export function bytesOf(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size)
  let block = sha256(Buffer.from(seed))
  for (let offset = 0; offset < size; offset += block.length) {
    block.copy(out, offset)
    block = sha256(block)
  }

  return out
}

export async function writeBackupFolder(dir: string, options: BackupFolderOptions = {}): Promise<BackupFolder> {
  const framed = options.framed ?? true
  const contents = new Map<string, Buffer>()
  const onDisk = (rel: string, content: Buffer) =>
    framed && (rel.startsWith('tae/') || rel.startsWith('hakeeper/')) ? frame(content) : content
  const put = async (rel: string, content: Buffer, sidecar: boolean) => {
    contents.set(rel, content)
    await mkdir(dirname(join(dir, rel)), {recursive: true})
    await writeFile(join(dir, rel), onDisk(rel, content))
    if (sidecar) await writeFile(join(dir, `${rel}.sha256`), onDisk(rel, sha256(content)))
  }

  // tae/: objects (one spans several 2044-byte frames, one is empty), checkpoint and GC metadata
  const objects: Array<[string, Buffer]> = options.objects
    ? options.objects.map((name) => [name, bytesOf(name, 3000)])
    : [
        [OBJECTS[0], bytesOf('object 0', 5000)],
        [OBJECTS[1], bytesOf('object 1', 2044)],
        [OBJECTS[2], Buffer.alloc(0)],
      ]
  const data: Array<[string, Buffer]> = [
    ...objects,
    [CKP, bytesOf('ckp', 700)],
    [REWRITTEN_CKP, bytesOf('rewritten ckp', 300)],
    [GC, bytesOf('gc', 90)],
  ]
  const lines: string[] = []
  let total = 0
  for (const [name, content] of data) {
    await put(`tae/${name}`, content, false)
    const digest = name === REWRITTEN_CKP ? '' : sha256(content).toString('hex')
    lines.push(`${name},${content.length},${digest},true,${FULL_TS}`)
    total += content.length
  }

  for (const name of options.inBase ?? [])
    lines.push(`${name},4096,${sha256(Buffer.from(name)).toString('hex')},false,0-0`)

  await put('tae/tae_list', Buffer.from(lines.map((line) => `${line}\n`).join('')), true)
  await put('tae/tae_sum', Buffer.from(`${options.taeSum ?? `2024-05-15 11:56:44,${total},${FULL_TS},full`}\n`), true)
  await put('hakeeper/hk_data', bytesOf('hakeeper', 120), true)
  await put(LAUNCH, Buffer.from('[log]\nlevel = "info"\n'), true)
  await put(CN, Buffer.from('service-type = "CN"\n'), true)
  await put(
    'mo_meta',
    Buffer.from(
      [
        'version,0823,',
        'buildinfo,GoVersion: go1.22.3|BranchName: HEAD|CommitID: 1a2b3c4|BuildTime: 20240515-115000|Version: v1.2.0,',
        `launchconfig,launch,${LAUNCH.slice('config/'.length)}`,
        `launchconfig,cn,${CN.slice('config/'.length)}`,
        '',
      ].join('\n'),
    ),
    true,
  )
  return {contents}
}

/** Launch configs as MO ships them: 'v4.2' (DISK-V2 in shared2/local2; log.toml with no file service) or 'legacy' (DISK, MO's default dirs). */
export type ConfigStyle = 'legacy' | 'v4.2'

/**
 * Writes `<installDir>/etc/launch/{launch,tn,cn,log}.toml` as matrixone's etc/launch has them
 * (v4.2: commit 7c27538f; legacy: SHARED and LOCAL as DISK without data-dir, i.e. mo-data/shared
 * and mo-data/local). `sharedBackend` overrides SHARED's backend (e.g. 'S3'). Returns the config dir.
 */
export async function writeLaunchConfig(
  installDir: string,
  style: ConfigStyle,
  options: {logExtra?: string; sharedBackend?: string; sharedDir?: string} = {},
): Promise<string> {
  const dir = join(installDir, 'etc', 'launch')
  await mkdir(dir, {recursive: true})
  const backend = options.sharedBackend ?? (style === 'v4.2' ? 'DISK-V2' : 'DISK')
  const sharedDir = options.sharedDir ?? (style === 'v4.2' ? './mo-data/shared2' : undefined)
  const service = (type: string, uuid: string) =>
    [
      `service-type = "${type}"`,
      'data-dir = "./mo-data"',
      '',
      '[[fileservice]]',
      'name = "LOCAL"',
      `backend = "${style === 'v4.2' ? 'DISK-V2' : 'DISK'}"`,
      ...(style === 'v4.2' ? ['data-dir = "./mo-data/local2"'] : []),
      '',
      '[[fileservice]]',
      'name = "SHARED"',
      `backend = "${backend}"`,
      ...(sharedDir ? [`data-dir = "${sharedDir}"`] : []),
      '',
      '[log]',
      'level = "info"',
      '',
      `[${type.toLowerCase()}]`,
      `uuid = "${uuid}"`,
      '',
    ].join('\n')
  await writeFile(
    join(dir, 'launch.toml'),
    'logservices = [\n    "./etc/launch/log.toml",\n]\n\ntnservices = [\n    "./etc/launch/tn.toml"\n]\n\ncnservices = [\n    "./etc/launch/cn.toml"\n]\n',
  )
  await writeFile(join(dir, 'tn.toml'), service('TN', 'dd4dccb4-4d3c-41f8-b482-5251dc7a41bf'))
  await writeFile(join(dir, 'cn.toml'), service('CN', 'dd1dccb4-4d3c-41f8-b482-5251dc7a41bf'))
  await writeFile(
    join(dir, 'log.toml'),
    `# service node type, [DN|CN|LOG]\nservice-type = "LOG"\ndata-dir = "./mo-data"\n\n[log]\nlevel = "info"\n${options.logExtra ?? ''}`,
  )
  return dir
}
