/**
 * Where the target MatrixOne reads its files, and in which form: read from its launch configs.
 *
 * What MO does (matrixone v4.2 tree, commit 7c27538f):
 * - etc/launch/launch.toml lists the services' configs (`logservices`, `tnservices`,
 *   `cnservices`), as paths relative to mo-service's working directory; v4.2's tn.toml and
 *   cn.toml declare `[[fileservice]] name = "SHARED", backend = "DISK-V2", data-dir =
 *   "./mo-data/shared2"` (LOCAL: `./mo-data/local2`); log.toml declares no file service.
 * - cmd/mo-service/config.go `setFileserviceDefaultValues`: a file service named `s3` is renamed
 *   SHARED; one without data-dir gets `<data-dir>/<lower(name)>`; a missing LOCAL or SHARED is
 *   added with backend `DISK` at `<data-dir>/local`, `<data-dir>/shared`. The service's
 *   `data-dir` defaults to `./mo-data`. Names are matched case-insensitively (`EqualFold`).
 *   Relative paths are used as they are, i.e. relative to mo-service's working directory.
 * - pkg/fileservice/config.go: backends MEM, DISK, DISK-V2, DISK-ETL, DISK-TMP, S3, MINIO
 *   (upper-cased before matching). DISK frames files in CRC-32C blocks, DISK-V2 does not
 *   (framing.ts).
 * - pkg/logservice/config.go `BootstrapConfig.Restore.FilePath` (toml `[logservice.
 *   BootstrapConfig.restore] file-path`, default `hk_data`); service_bootstrap.go
 *   `getBackupData`: an absolute path is read raw with os.ReadFile; otherwise it is a fileservice
 *   path (`[SERVICE:]file`, service LOCAL by default) read through the log service's file service,
 *   hence framed as that file service's backend; an empty path turns the restore off.
 * - mo_br restore takes `--dn_config_path` (the TN's config) to learn where SHARED is.
 *
 * How we find them: `--mo-config DIR`, else `<dirname(data dir)>/etc/launch` (mo_ctl's layout:
 * mo-data and etc/ side by side in the install dir, which is mo-service's working directory);
 * `--dn_config_path FILE` names the TN file (otherwise launch.toml's first `tnservices` entry, else
 * DIR/tn.toml; an entry that does not exist relative to the install dir is looked for by name in
 * DIR). Relative paths in the configs resolve against the install dir, taken to be the
 * directory that holds the data dir. The log config is launch.toml's first `logservices` entry,
 * else DIR/log.toml; when there is none, MO's defaults apply (LOCAL = DISK at <data-dir>/local).
 *
 * Guarantees: reads only; every refusal is a `usage` BrError (exit 2) naming the file and what it
 * held, raised before anything is stopped or written. Not: a full model of MO's config (only the
 * SHARED file service, the log service's LOCAL and the HAKeeper restore path), nor of clusters with
 * several TNs or log services (the first of each is read).
 */
import {readFile, stat} from 'node:fs/promises'
import {basename, dirname, isAbsolute, join, relative, resolve, sep} from 'node:path'

import {usageError} from '../errors.js'
import {type TargetLayout} from './layout.js'

/** The local file service backends a restore can write. */
export type LocalBackend = 'DISK' | 'DISK-V2'

export const KNOWN_BACKENDS = ['MEM', 'DISK', 'DISK-V2', 'DISK-ETL', 'DISK-TMP', 'S3', 'MINIO'] as const

export interface MoTargetConfig {
  /** the directory the launch configs were looked for in */
  configDir: string
  /** where the HAKeeper reads its restore file, absolute; null: restore turned off (file-path = "") */
  hakeeper: null | {framed: boolean; from: string; path: string}
  /** mo-service's working directory: relative config paths resolve against it */
  installDir: string
  /** facts assumed rather than read (a missing log config, a missing file service entry) */
  notes: string[]
  /** the SHARED file service: backend, absolute data dir, and the file that said so */
  shared: {backend: LocalBackend; dir: string; from: string}
}

export interface FindConfigOptions {
  /** the data directory the restore writes (mo-data) */
  dataDir: string
  /** --mo-config */
  moConfig?: string
  /** --dn_config_path */
  tnConfig?: string
}

type Table = Record<string, unknown>

const FIX =
  'pass --mo-config with the etc/launch directory of the target MatrixOne, or --dn_config_path with its TN config'

/** The default config dir: etc/launch beside the data dir, in the install dir that holds both. */
export function defaultConfigDir(dataDir: string): string {
  return join(dirname(resolve(dataDir)), 'etc', 'launch')
}

/** Reads the target's launch configs; refuses (exit 2) what it cannot read or does not know. */
export async function readTargetConfig(options: FindConfigOptions): Promise<MoTargetConfig> {
  const dataDir = resolve(options.dataDir)
  const installDir = dirname(dataDir)
  const configDir = resolve(options.moConfig ?? defaultConfigDir(dataDir))
  const notes: string[] = []
  const launchFile = join(configDir, 'launch.toml')
  const launch = (await isFile(launchFile)) ? await readToml(launchFile) : null
  // launch.toml's paths are relative to mo-service's working dir; a config dir named elsewhere
  // (--mo-config) holds the same files by name
  const listed = async (key: string): Promise<string | undefined> => {
    const list = launch?.[key]
    if (!Array.isArray(list) || typeof list[0] !== 'string') return undefined
    const path = resolve(installDir, list[0])
    const beside = join(configDir, basename(list[0]))
    return !(await isFile(path)) && (await isFile(beside)) ? beside : path
  }

  const tnFile = options.tnConfig
    ? resolve(options.tnConfig)
    : ((await listed('tnservices')) ?? join(configDir, 'tn.toml'))
  if (!(await isFile(tnFile))) {
    throw usageError(
      options.tnConfig
        ? `--dn_config_path ${tnFile} is not a readable file`
        : `no MatrixOne launch config at ${configDir} (looked for ${launch ? `${tnFile}, from launch.toml's tnservices` : `${launchFile} and ${tnFile}`}): cannot tell where the target reads SHARED, nor in which format`,
      FIX,
    )
  }

  const tn = await readToml(tnFile)
  const tnDataDir = serviceDataDir(tn, installDir, tnFile)
  const shared = localService(tn, 'SHARED', {file: tnFile, install: installDir, notes, service: tnDataDir})
  if (shared.backend === 'S3' || shared.backend === 'MINIO') {
    throw usageError(
      `${tnFile}: the SHARED file service is in object storage (backend ${shared.backend}): a restore into a local data directory cannot place its objects`,
      'restore into a MatrixOne whose SHARED backend is DISK or DISK-V2, or restore that cluster with mo_br',
    )
  }

  if (shared.backend !== 'DISK' && shared.backend !== 'DISK-V2') {
    throw usageError(
      `${tnFile}: the SHARED file service has backend '${shared.backend}', which a restore cannot write (known: DISK, DISK-V2; ${KNOWN_BACKENDS.join(', ')} exist)`,
      FIX,
    )
  }

  const logFile = (await listed('logservices')) ?? join(configDir, 'log.toml')
  let log: Table = {}
  if (await isFile(logFile)) {
    log = await readToml(logFile)
  } else {
    notes.push(
      `no log service config at ${logFile}: MatrixOne's defaults assumed (LOCAL = DISK in <data-dir>/local, hk_data)`,
    )
  }

  const hakeeper = hakeeperPath(log, installDir, logFile, notes)
  return {
    configDir,
    hakeeper,
    installDir,
    notes,
    shared: {backend: shared.backend, dir: shared.dir, from: tnFile},
  }
}

/** A path of the target as the restore's staging tree names it: relative to the data dir, or null when outside it. */
export function insideDataDir(dataDir: string, path: string): null | string {
  const rel = relative(resolve(dataDir), path)
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return null
  return rel.split(sep).join('/')
}

/**
 * The target's layout relative to the data dir a restore swaps in. A SHARED directory or a
 * HAKeeper restore file outside the data dir is refused: the restore replaces the data dir only.
 */
export function targetLayout(config: MoTargetConfig, dataDir: string): TargetLayout {
  const shared = insideDataDir(dataDir, config.shared.dir)
  const sharedIsDataDir = resolve(dataDir) === config.shared.dir
  if (shared === null && !sharedIsDataDir) {
    throw usageError(
      `${config.shared.from}: the SHARED file service's data-dir ${config.shared.dir} is outside the data directory ${resolve(dataDir)}: a restore replaces only the data directory`,
      'restore into the data directory that holds SHARED (--data-dir), or point the config at a directory inside it',
    )
  }

  let hakeeper: null | string = null
  if (config.hakeeper) {
    hakeeper = insideDataDir(dataDir, config.hakeeper.path)
    if (hakeeper === null) {
      throw usageError(
        `${config.hakeeper.from}: the HAKeeper reads its restore file from ${config.hakeeper.path}, outside the data directory ${resolve(dataDir)}: a restore replaces only the data directory`,
        'set logservice.BootstrapConfig.restore.file-path to hk_data (the default) for the restore',
      )
    }
  }

  return {
    hakeeper,
    hakeeperFramed: config.hakeeper?.framed ?? false,
    shared: shared ?? '',
    sharedFramed: config.shared.backend === 'DISK',
  }
}

function hakeeperPath(log: Table, installDir: string, logFile: string, notes: string[]): MoTargetConfig['hakeeper'] {
  const restore = table(table(table(log, 'logservice'), 'BootstrapConfig'), 'restore')
  const given = restore['file-path']
  if (given !== undefined && typeof given !== 'string') {
    throw usageError(`${logFile}: logservice.BootstrapConfig.restore.file-path is not a string`, FIX)
  }

  const filePath = given ?? 'hk_data'
  if (filePath === '') {
    notes.push(
      `${logFile}: logservice.BootstrapConfig.restore.file-path is empty: the HAKeeper restores nothing, hk_data is left out`,
    )
    return null
  }

  if (isAbsolute(filePath)) return {framed: false, from: logFile, path: filePath}
  const colon = filePath.lastIndexOf(':')
  const service = colon === -1 ? 'LOCAL' : filePath.slice(0, colon).split(',')[0]
  const file = colon === -1 ? filePath : filePath.slice(colon + 1)
  const dataDir = serviceDataDir(log, installDir, logFile)
  const local = localService(log, service, {file: logFile, install: installDir, notes, service: dataDir})
  if (local.backend !== 'DISK' && local.backend !== 'DISK-V2') {
    throw usageError(
      `${logFile}: the HAKeeper reads ${filePath} through file service ${service}, backend '${local.backend}', which a restore cannot write`,
      'point logservice.BootstrapConfig.restore.file-path at an absolute path or a DISK / DISK-V2 file service',
    )
  }

  return {framed: local.backend === 'DISK', from: logFile, path: resolve(local.dir, file)}
}

/** The service's `data-dir` (default ./mo-data), absolute. */
function serviceDataDir(config: Table, installDir: string, file: string): string {
  const dir = config['data-dir'] ?? './mo-data'
  if (typeof dir !== 'string' || dir === '') throw usageError(`${file}: data-dir is not a path`, FIX)
  return resolve(installDir, dir)
}

/** A file service of a config by name, with MO's defaults for a missing entry or data-dir. */
function localService(
  config: Table,
  name: string,
  where: {file: string; install: string; notes: string[]; service: string},
): {backend: string; dir: string} {
  const {file, notes, service: serviceDir} = where
  const services = config.fileservice ?? []
  if (!Array.isArray(services))
    throw usageError(`${file}: fileservice is not an array of tables ([[fileservice]])`, FIX)
  const wanted = name.toUpperCase()
  const entry = (services as unknown[]).find((s): s is Table => {
    if (typeof s !== 'object' || s === null) return false
    const n = String((s as Table).name ?? '').toUpperCase()
    return n === wanted || (wanted === 'SHARED' && n === 'S3')
  })
  if (!entry) {
    if (wanted !== 'SHARED' && wanted !== 'LOCAL') {
      throw usageError(`${file}: no file service named ${name}`, FIX)
    }

    notes.push(
      `${file}: no ${wanted} file service: MatrixOne's default assumed (DISK in ${join(serviceDir, wanted.toLowerCase())})`,
    )
    return {backend: 'DISK', dir: join(serviceDir, wanted.toLowerCase())}
  }

  const {backend} = entry
  if (typeof backend !== 'string' || backend === '') {
    throw usageError(`${file}: the ${wanted} file service names no backend`, FIX)
  }

  const dir = entry['data-dir']
  if (dir !== undefined && typeof dir !== 'string') throw usageError(`${file}: ${wanted}'s data-dir is not a path`, FIX)
  return {
    backend: backend.toUpperCase(),
    dir: dir ? resolve(where.install, dir) : join(serviceDir, wanted.toLowerCase()),
  }
}

/** A sub-table by key, matched case-insensitively as MO's TOML decoder does for untagged fields. */
function table(parent: Table, key: string): Table {
  const found = Object.keys(parent).find((k) => k.toLowerCase() === key.toLowerCase())
  const value = found === undefined ? undefined : parent[found]
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Table) : {}
}

async function readToml(file: string): Promise<Table> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    throw usageError(
      `cannot read MatrixOne config ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      FIX,
    )
  }

  // Loaded here, not with the module: most runs read no MatrixOne config (~11 ms of import).
  const {parse} = await import('smol-toml')
  try {
    return parse(text) as Table
  } catch (error) {
    const first = (error as Error).message.split('\n')[0]
    throw usageError(`MatrixOne config ${file} is not valid TOML: ${first}`, FIX)
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile()
  } catch {
    return false
  }
}
