/**
 * Restore of an online backup into the layout and format the target MatrixOne reads (issue 12):
 * backups taken from a v4.2-style MO (DISK-V2: raw files) and from an older one (DISK: CRC-framed)
 * restored into targets of either kind (launch configs as matrixone's etc/launch has them,
 * test/unit/lib/mo/fixture.ts writeLaunchConfig), checked byte for byte on the logical content and
 * the target's paths; --dry-run's mapping; and the refusals, before anything is written.
 */
import {mkdir, readdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {frame} from '../../src/lib/mo/framing.js'
import {backupArgs, NO_SQL, restoreArgs} from '../helpers/args.js'
import {runInProcess, tempDir} from '../helpers/cli.js'
import {type FakeMo, startFakeMo} from '../unit/lib/mo/fake-mo.js'
import {type ConfigStyle, writeBackupFolder, writeLaunchConfig} from '../unit/lib/mo/fixture.js'

let tmp: {cleanup: () => Promise<void>; path: string}
let mo: FakeMo
let repo: string
/** the framing the fake MO writes its next BACKUP folder in */
let framed = true
/** relative path in the BACKUP folder -> content, per source backend */
const contents = new Map<string, Map<string, Buffer>>()
const ids = new Map<string, string>()

beforeAll(async () => {
  tmp = await tempDir('moctl-br-mo-layout-')
  repo = join(tmp.path, 'repo')
  const dataDir = join(tmp.path, 'source', 'mo-data')
  await mkdir(join(dataDir, 'shared'), {recursive: true})
  mo = await startFakeMo(async (statement, connection) => {
    const dir = /FILESYSTEM '([^']+)'/.exec(statement)?.[1]
    if (!dir) throw new Error(`unexpected statement: ${statement}`)
    const folder = await writeBackupFolder(dir, {framed})
    contents.set(framed ? 'DISK' : 'DISK-V2', folder.contents)
    connection.writeOk()
  })
  for (const backend of ['DISK', 'DISK-V2']) {
    framed = backend === 'DISK'

    const r = await runInProcess(
      backupArgs(repo, dataDir, '--mode', 'online', '--no-encrypt', '--port', String(mo.port), '--json'),
    )
    expect(r.code, r.stderr).toBe(0)
    ids.set(backend, JSON.parse(r.stdout).id)
  }
})

afterAll(async () => {
  await mo?.close()
  await tmp?.cleanup()
})

/** the files of a directory tree, relative, sorted */
async function files(root: string): Promise<string[]> {
  const out = await readdir(root, {recursive: true, withFileTypes: true})
  return out
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(root.length + 1))
    .sort()
}

/** A stand-in for MO's binary: `-version` prints what cmd/mo-service/version.go prints. */
async function writeMoService(path: string, version: string): Promise<void> {
  await writeFile(
    path,
    `#!/bin/sh\n[ "$1" = "-version" ] || exit 9\nprintf 'MatrixOne build info:\\n  The golang version used to build this binary: go1.22.3\\n  Git branch name: main\\n  Git commit ID: 9f8e7d6\\n  Buildtime: 20260101-000000\\n  Version: ${version}\\n'\n`,
    {mode: 0o755},
  )
}

/** An install dir with a v4.2 config and a mo-service of this version; returns its data dir. */
async function versionTarget(name: string, version: string): Promise<string> {
  const dir = join(tmp.path, `version-${name}`)
  await writeLaunchConfig(dir, 'v4.2')
  await writeMoService(join(dir, 'mo-service'), version)
  return join(dir, 'mo-data')
}

/** A restore that must be refused (exit 2) with a one-line message, leaving nothing beside the config. */
async function refusal(
  name: string,
  setUp: (install: string) => Promise<unknown>,
  ...extra: string[]
): Promise<string> {
  const install = join(tmp.path, `refuse-${name}`)
  await mkdir(install, {recursive: true})
  await setUp(install)
  const target = join(install, 'mo-data')
  const r = await runInProcess(restoreArgs(ids.get('DISK')!, repo, target, ...NO_SQL, '--json', ...extra))
  expect(r.code, r.stderr).toBe(2)
  expect(await readdir(install)).not.toContain('mo-data')
  expect((await readdir(install)).filter((n) => n.includes('.restore-'))).toEqual([])
  const {message} = JSON.parse(r.stdout).error
  expect(message).not.toContain('\n')
  return message as string
}

const TARGETS: Array<{shared: string; style: ConfigStyle; targetBackend: string}> = [
  {shared: 'shared2', style: 'v4.2', targetBackend: 'DISK-V2'},
  {shared: 'shared', style: 'legacy', targetBackend: 'DISK'},
]

describe('restore into the layout and format the target MatrixOne reads', () => {
  for (const source of ['DISK', 'DISK-V2']) {
    for (const {shared, style, targetBackend} of TARGETS) {
      it(`restores a ${source} backup into a ${style} target (${targetBackend} in ${shared}/), byte for byte`, async () => {
        const install = join(tmp.path, `${source}-into-${style}`)
        await writeLaunchConfig(install, style)
        const target = join(install, 'mo-data')
        const r = await runInProcess(restoreArgs(ids.get(source)!, repo, target, ...NO_SQL))
        expect(r.code, r.stderr).toBe(0)
        const content = contents.get(source)!
        const data = [...content.keys()].filter((p) => p.startsWith('tae/') && !p.startsWith('tae/tae_'))
        // hk_data: the log service's LOCAL is DISK in both (log.toml declares no file service)
        expect(await files(target)).toEqual(
          [...data.map((p) => `${shared}/${p.slice('tae/'.length)}`), 'local/hk_data'].sort(),
        )
        for (const path of data) {
          const bytes = content.get(path)!

          const got = await readFile(join(target, shared, path.slice('tae/'.length)))
          expect([path, got]).toEqual([path, targetBackend === 'DISK' ? frame(bytes) : bytes])
        }

        expect(await readFile(join(target, 'local', 'hk_data'))).toEqual(frame(content.get('hakeeper/hk_data')!))
        const converted = source !== targetBackend
        expect(r.stderr + r.stdout).toContain(converted ? 'converted' : 'files moved')
      })
    }
  }

  it('--dry-run prints the mapping and --json carries it, changing nothing', async () => {
    const install = join(tmp.path, 'dry-run')
    await writeLaunchConfig(install, 'v4.2')
    const target = join(install, 'mo-data')
    const text = await runInProcess(restoreArgs(ids.get('DISK')!, repo, target, ...NO_SQL, '--dry-run'))
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toContain(
      'tae/** -> shared2/**; conversion: DISK -> DISK-V2: strip the CRC-32C frames, checking each',
    )
    expect(text.stdout).toContain('hakeeper/hk_data -> local/hk_data; conversion: none (DISK, as the target reads it)')
    const json = await runInProcess(restoreArgs(ids.get('DISK-V2')!, repo, target, ...NO_SQL, '--dry-run', '--json'))
    expect(json.code, json.stderr).toBe(0)
    expect(JSON.parse(json.stdout).layout.slice(0, 2)).toEqual([
      {conversion: 'none (DISK-V2, as the target reads it)', from: 'tae/**', to: 'shared2/**'},
      {
        conversion: 'DISK-V2 -> DISK: add CRC-32C frames, checking the content SHA-256',
        from: 'hakeeper/hk_data',
        to: 'local/hk_data',
      },
    ])
    expect(await readdir(install)).toEqual(['etc'])
  })

  it('--mo-config and --dn_config_path (mo_br) name the config wherever it is', async () => {
    const configs = join(tmp.path, 'elsewhere')
    const dir = await writeLaunchConfig(configs, 'v4.2', {sharedDir: './mo-data/shared-b'})
    const install = join(tmp.path, 'flags')
    const target = join(install, 'mo-data')
    const byDir = await runInProcess(
      restoreArgs(ids.get('DISK')!, repo, target, ...NO_SQL, '--dry-run', '--json', '--mo-config', dir),
    )
    expect(byDir.code, byDir.stderr).toBe(0)
    expect(JSON.parse(byDir.stdout).layout[0].to).toBe('shared-b/**')
    const byTn = await runInProcess(
      restoreArgs(
        ids.get('DISK')!,
        repo,
        target,
        ...NO_SQL,
        '--dry-run',
        '--json',
        '--dn_config_path',
        join(dir, 'tn.toml'),
      ),
    )
    expect(byTn.code, byTn.stderr).toBe(0)
    expect(JSON.parse(byTn.stdout).layout[0].to).toBe('shared-b/**')
  })

  it('puts hk_data where log.toml tells the HAKeeper to read it, framed as its file service', async () => {
    const install = join(tmp.path, 'hk-path')
    await writeLaunchConfig(install, 'v4.2', {
      logExtra:
        '\n[[fileservice]]\nname = "LOCAL"\nbackend = "DISK-V2"\ndata-dir = "./mo-data/local2"\n\n[logservice.BootstrapConfig.restore]\nfile-path = "restore/hk_data"\n',
    })
    const target = join(install, 'mo-data')
    const r = await runInProcess(restoreArgs(ids.get('DISK')!, repo, target, ...NO_SQL))
    expect(r.code, r.stderr).toBe(0)
    expect(await readFile(join(target, 'local2', 'restore', 'hk_data'))).toEqual(
      contents.get('DISK')!.get('hakeeper/hk_data'),
    )
  })

  it("records the source MatrixOne's version, commit and SHARED backend, signed with the record", async () => {
    const list = await runInProcess(['br', 'list', '--path', repo, '--json'])
    const records = JSON.parse(list.stdout) as Array<{id: string; source: {mo?: unknown}}>
    const mo = (backend: string) => records.find((r) => r.id === ids.get(backend))?.source.mo
    expect(mo('DISK')).toEqual({commit: '1a2b3c4', sharedBackend: 'DISK', version: 'v1.2.0'})
    expect(mo('DISK-V2')).toEqual({commit: '1a2b3c4', sharedBackend: 'DISK-V2', version: 'v1.2.0'})
  })

  describe("checks the target's version (mo-service -version) against the backup's (v1.2.0)", () => {
    it('refuses an older MatrixOne (exit 2) before anything is written, and --force-version overrides it saying so', async () => {
      const target = await versionTarget('older', 'v1.1.9')
      const r = await runInProcess(restoreArgs(ids.get('DISK')!, repo, target, ...NO_SQL, '--json'))
      expect(r.code, r.stderr).toBe(2)
      expect(JSON.parse(r.stdout).error.message).toBe(
        `the backup is from MatrixOne v1.2.0, the target ${join(target, '..', 'mo-service')} is older (v1.1.9): refusing to restore`,
      )
      expect(await readdir(join(target, '..'))).toEqual(['etc', 'mo-service'])
      const forced = await runInProcess(restoreArgs(ids.get('DISK')!, repo, target, ...NO_SQL, '--force-version'))
      expect(forced.code, forced.stderr).toBe(0)
      expect(forced.stdout + forced.stderr).toContain(
        '--force-version: the backup is from MatrixOne v1.2.0, the target',
      )
    })

    it('restores into the same or a newer MatrixOne, found beside the data dir or by --mo-service', async () => {
      const target = await versionTarget('newer', 'v2.0.2')
      const r = await runInProcess(restoreArgs(ids.get('DISK-V2')!, repo, target, ...NO_SQL))
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout + r.stderr).toContain('backup from MatrixOne v1.2.0, target v2.0.2')
      const other = join(tmp.path, 'version-flag')
      await writeLaunchConfig(other, 'legacy')
      await writeMoService(join(tmp.path, 'bin-mo-service'), 'v1.2.0')
      const byFlag = await runInProcess(
        restoreArgs(
          ids.get('DISK')!,
          repo,
          join(other, 'mo-data'),
          ...NO_SQL,
          '--mo-service',
          join(tmp.path, 'bin-mo-service'),
        ),
      )
      expect(byFlag.code, byFlag.stderr).toBe(0)
      expect(byFlag.stdout + byFlag.stderr).toContain('target v1.2.0')
    })

    it('runs mo-service -version without the secrets of its environment', async () => {
      const target = await versionTarget('env', 'v2.0.2')
      const seen = join(tmp.path, 'mo-service-env')
      await writeFile(
        join(target, '..', 'mo-service'),
        `#!/bin/sh\nenv > '${seen}'\nprintf 'MatrixOne build info:\\n  Version: v2.0.2\\n'\n`,
        {mode: 0o755},
      )
      const r = await runInProcess(restoreArgs(ids.get('DISK-V2')!, repo, target, ...NO_SQL), {
        env: {MO_PASSWORD: 'pw-for-mo-sql-9c1e'},
      })
      expect(r.code, r.stderr).toBe(0)
      const env = await readFile(seen, 'utf8')
      expect(env).toContain('PATH=')
      expect(env).not.toContain('pw-for-mo-sql-9c1e')
    })

    it('warns, and restores, when no mo-service can be asked', async () => {
      const dir = join(tmp.path, 'version-none')
      await writeLaunchConfig(dir, 'legacy')
      const r = await runInProcess(restoreArgs(ids.get('DISK')!, repo, join(dir, 'mo-data'), ...NO_SQL))
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toContain(
        'target MatrixOne version unknown (no mo-service beside the data dir (pass --mo-service PATH))',
      )
    })
  })

  it("records a cold backup's MatrixOne (config and mo-service beside it) and refuses it into another SHARED backend", async () => {
    const source = join(tmp.path, 'cold-source')
    await writeLaunchConfig(source, 'legacy')
    await writeMoService(join(source, 'mo-service'), 'v1.2.0')
    await mkdir(join(source, 'mo-data', 'shared'), {recursive: true})
    await writeFile(join(source, 'mo-data', 'shared', 'obj'), frame(Buffer.from('object')))
    const backup = await runInProcess(backupArgs(repo, join(source, 'mo-data'), '--no-encrypt', ...NO_SQL, '--json'))
    expect(backup.code, backup.stderr).toBe(0)
    const record = JSON.parse(backup.stdout)
    expect(record.source.mo).toEqual({commit: '9f8e7d6', sharedBackend: 'DISK', version: 'v1.2.0'})
    const target = join(await versionTarget('cold', 'v1.2.0'), '..')
    const r = await runInProcess(restoreArgs(record.id, repo, join(target, 'mo-data'), ...NO_SQL, '--json'))
    expect(r.code, r.stderr).toBe(2)
    expect(JSON.parse(r.stdout).error.message).toBe(
      `the cold backup holds SHARED as DISK, the target reads DISK-V2 (${join(target, 'etc/launch/tn.toml')}); a cold backup is not converted: refusing to restore`,
    )
    const forced = await runInProcess(
      restoreArgs(record.id, repo, join(target, 'mo-data'), ...NO_SQL, '--force-version'),
    )
    expect(forced.code, forced.stderr).toBe(0)
    expect(await readFile(join(target, 'mo-data', 'shared', 'obj'))).toEqual(frame(Buffer.from('object')))
  })

  describe('refuses before anything is written (exit 2), saying what it found', () => {
    it('no config beside the data dir', async () => {
      const message = await refusal('none', async () => {})
      expect(message).toMatch(/^no MatrixOne launch config at .*refuse-none\/etc\/launch/)
      expect(message).toContain('cannot tell where the target reads SHARED')
    })

    it('a --dn_config_path that is not a file', async () => {
      const message = await refusal('dn', async () => {}, '--dn_config_path', '/nonexistent/tn.toml')
      expect(message).toBe('--dn_config_path /nonexistent/tn.toml is not a readable file')
    })

    it('SHARED in object storage', async () => {
      const message = await refusal('s3', (install) => writeLaunchConfig(install, 'v4.2', {sharedBackend: 'S3'}))
      expect(message).toContain('the SHARED file service is in object storage (backend S3)')
    })

    it('a backend it does not know', async () => {
      const message = await refusal('odd', (install) => writeLaunchConfig(install, 'v4.2', {sharedBackend: 'DISK-V3'}))
      expect(message).toContain("the SHARED file service has backend 'DISK-V3', which a restore cannot write")
    })

    it('a config that is not TOML', async () => {
      const message = await refusal('toml', async (install) => {
        const dir = await writeLaunchConfig(install, 'v4.2')
        await writeFile(join(dir, 'tn.toml'), '[[fileservice]\nname = ')
      })
      expect(message).toMatch(/^MatrixOne config .*tn\.toml is not valid TOML/)
    })

    it('SHARED outside the data directory', async () => {
      const message = await refusal('outside', (install) =>
        writeLaunchConfig(install, 'v4.2', {sharedDir: '/srv/mo-shared'}),
      )
      expect(message).toContain("the SHARED file service's data-dir /srv/mo-shared is outside the data directory")
    })
  })
})
