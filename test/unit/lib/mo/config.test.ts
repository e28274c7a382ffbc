/**
 * readTargetConfig / targetLayout: the target MatrixOne's launch configs read as mo-service reads
 * them (cmd/mo-service/config.go setFileserviceDefaultValues, pkg/logservice BootstrapConfig).
 */
import {mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {readTargetConfig, targetLayout} from '../../../../src/lib/mo/config.js'
import {tempDir} from '../../../helpers/cli.js'
import {writeLaunchConfig} from './fixture.js'

let tmp: {cleanup: () => Promise<void>; path: string}
beforeEach(async () => {
  tmp = await tempDir('moctl-br-config-')
})
afterEach(async () => tmp.cleanup())

describe('readTargetConfig', () => {
  it("reads v4.2's configs: SHARED is DISK-V2 in mo-data/shared2, hk_data in the log service's LOCAL (DISK, mo-data/local)", async () => {
    await writeLaunchConfig(tmp.path, 'v4.2')
    const dataDir = join(tmp.path, 'mo-data')
    const config = await readTargetConfig({dataDir})
    expect(config.shared).toEqual({
      backend: 'DISK-V2',
      dir: join(dataDir, 'shared2'),
      from: join(tmp.path, 'etc/launch/tn.toml'),
    })
    expect(config.hakeeper).toEqual({
      framed: true,
      from: join(tmp.path, 'etc/launch/log.toml'),
      path: join(dataDir, 'local/hk_data'),
    })
    expect(config.notes).toEqual([
      `${join(tmp.path, 'etc/launch/log.toml')}: no LOCAL file service: MatrixOne's default assumed (DISK in ${join(dataDir, 'local')})`,
    ])
    expect(targetLayout(config, dataDir)).toEqual({
      hakeeper: 'local/hk_data',
      hakeeperFramed: true,
      shared: 'shared2',
      sharedFramed: false,
    })
  })

  it('takes a file service named s3 as SHARED, a lower-case backend, a relative service data-dir and a case-insensitive BootstrapConfig', async () => {
    const dir = join(tmp.path, 'etc', 'launch')
    await mkdir(dir, {recursive: true})
    await writeFile(join(dir, 'tn.toml'), 'data-dir = "data"\n[[fileservice]]\nname = "s3"\nbackend = "disk"\n')
    await writeFile(
      join(dir, 'log.toml'),
      'data-dir = "data"\n[[fileservice]]\nname = "LOCAL"\nbackend = "DISK-V2"\n[logservice.bootstrapconfig.restore]\nfile-path = "hk"\n',
    )
    const dataDir = join(tmp.path, 'data')
    const config = await readTargetConfig({dataDir})
    expect(config.shared).toMatchObject({backend: 'DISK', dir: join(dataDir, 'shared')})
    expect(config.hakeeper).toMatchObject({framed: false, path: join(dataDir, 'local/hk')})
  })

  it('turns hk_data off for an empty file-path, and refuses one outside the data dir', async () => {
    await writeLaunchConfig(tmp.path, 'legacy', {logExtra: '[logservice.BootstrapConfig.restore]\nfile-path = ""\n'})
    const dataDir = join(tmp.path, 'mo-data')
    const off = await readTargetConfig({dataDir})
    expect(off.hakeeper).toBeNull()
    expect(targetLayout(off, dataDir)).toMatchObject({hakeeper: null, shared: 'shared', sharedFramed: true})
    await writeLaunchConfig(tmp.path, 'legacy', {
      logExtra: '[logservice.BootstrapConfig.restore]\nfile-path = "/tmp/hk"\n',
    })
    const outside = await readTargetConfig({dataDir})
    expect(() => targetLayout(outside, dataDir)).toThrow(
      'the HAKeeper reads its restore file from /tmp/hk, outside the data directory',
    )
  })
})
