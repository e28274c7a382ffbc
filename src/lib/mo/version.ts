/**
 * The version of a MatrixOne build, and whether a backup may be restored into it.
 *
 * What MO prints (matrixone cmd/mo-service/version.go `maybePrintVersion`, run by `mo-service
 * -version`, then exit 0):
 *   MatrixOne build info:
 *     The golang version used to build this binary: go1.22.3
 *     Git branch name: main
 *     Git commit ID: 1a2b3c4…
 *     Buildtime: 20240515-115000
 *     Version: v2.0.2
 * The same values are in a backup's mo_meta `buildinfo` line (meta.ts). MO restores into the same
 * or a newer build, with the same SHARED backend (issue 12; checkpoint formats 11 (v1.2), 12
 * (v2.0), 13 (v2.1+), and today's MO reads only 12 and 13): an older target is refused.
 *
 * Guarantees: runs the binary with one argument and a timeout, never through a shell, and without
 * the secret environment variables (redact.ts childEnv); a version it
 * cannot parse compares as unknown (null), never as older or newer. Not: a reader of checkpoint
 * files (the checkpoint format follows from the version).
 */
import {execFile} from 'node:child_process'
import {access, constants} from 'node:fs/promises'
import {dirname, join, resolve} from 'node:path'
import {promisify} from 'node:util'

import {childEnv} from '../redact.js'
import {readTargetConfig} from './config.js'

export interface MoBuild {
  commit: null | string
  version: null | string
}

const VERSION_TIMEOUT_MS = 10_000

/** The build `mo-service -version` printed. */
export function parseVersionOutput(text: string): MoBuild {
  const field = (label: string) => new RegExp(`^\\s*${label}:\\s*(\\S+)\\s*$`, 'm').exec(text)?.[1] ?? null
  return {commit: field('Git commit ID'), version: field('Version')}
}

/** -1, 0 or 1 as a is older than, the same as, or newer than b (vMAJOR.MINOR.PATCH[-…]); null when either is not a version. */
export function compareVersions(a: string, b: string): -1 | 0 | 1 | null {
  const x = versionParts(a)
  const y = versionParts(b)
  if (!x || !y) return null
  for (let i = 0; i < 3; i++) {
    if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1
  }

  return 0
}

function versionParts(v: string): number[] | undefined {
  return /^v?(\d+)\.(\d+)\.(\d+)/.exec(v.trim())?.slice(1).map(Number)
}

/** The mo-service binary of an install dir, or null when there is none to run. */
export async function findMoService(installDir: string): Promise<null | string> {
  const path = join(installDir, 'mo-service')
  try {
    await access(path, constants.X_OK)
    return path
  } catch {
    return null
  }
}

/** Runs `<binary> -version`; the reason it could not, as a string, when it fails. */
export async function moServiceBuild(binary: string): Promise<MoBuild | string> {
  try {
    const {stdout} = await promisify(execFile)(binary, ['-version'], {env: childEnv(), timeout: VERSION_TIMEOUT_MS})
    const build = parseVersionOutput(stdout)
    return build.version ? build : `${binary} -version printed no "Version:" line`
  } catch (error) {
    return `${binary} -version failed: ${(error as Error).message.split('\n')[0]}`
  }
}

export interface InstalledBuild extends MoBuild {
  sharedBackend: 'DISK' | 'DISK-V2' | null
}

/**
 * What the MatrixOne install beside a data dir says of itself, for a cold backup's record: its
 * SHARED backend from the launch configs and its build from `mo-service -version`; undefined when
 * neither can be read (not a MatrixOne data dir, or not mo_ctl's layout).
 */
export async function installedBuild(dataDir: string): Promise<InstalledBuild | undefined> {
  const config = await readTargetConfig({dataDir}).catch(() => null)
  const binary = await findMoService(dirname(resolve(dataDir)))
  const build = binary ? await moServiceBuild(binary) : null
  if (!config && (build === null || typeof build === 'string')) return undefined
  return {
    commit: build && typeof build !== 'string' ? build.commit : null,
    sharedBackend: config?.shared.backend ?? null,
    version: build && typeof build !== 'string' ? build.version : null,
  }
}
