/**
 * The plugin inside another oclif CLI: a tiny host CLI (its own package.json with `@oclif/core` and
 * `@oclif/plugin-plugins`) links this repository with `plugins link`, then runs `br list --help`
 * and a real `br list`. Also: standalone `moctl plugins` and `moctl help` work, and the host's
 * own `plugins` command is the host's (our copy must not shadow it).
 */
import {mkdir, symlink, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {ROOT, runCli, tempDir} from '../helpers/cli.js'
import {makeSmallDataDir} from '../helpers/fixtures.js'

let tmp: {cleanup: () => Promise<void>; path: string}
let hostBin: string
let hostEnv: NodeJS.ProcessEnv
let repo: string
let backupId: string

beforeAll(async () => {
  tmp = await tempDir('moctl-br-host-')
  const host = join(tmp.path, 'host')
  await mkdir(join(host, 'bin'), {recursive: true})
  await writeFile(
    join(host, 'package.json'),
    JSON.stringify({
      dependencies: {'@oclif/core': '*', '@oclif/plugin-plugins': '*'},
      name: 'opsctl',
      oclif: {bin: 'opsctl', dirname: 'opsctl-test', plugins: ['@oclif/plugin-plugins'], topicSeparator: ' '},
      type: 'module',
      version: '1.0.0',
    }),
  )
  await writeFile(
    join(host, 'bin', 'run.js'),
    "import {execute} from '@oclif/core'\nawait execute({dir: import.meta.url})\n",
  )
  // The host's dependencies are this repository's own, linked: the test needs no registry.
  await symlink(join(ROOT, 'node_modules'), join(host, 'node_modules'))
  hostBin = join(host, 'bin', 'run.js')
  hostEnv = {
    OCLIF_DISABLE_LINKED_ESM_WARNING: '1',
    XDG_CACHE_HOME: join(tmp.path, 'xdg-cache'),
    XDG_CONFIG_HOME: join(tmp.path, 'xdg-config'),
    XDG_DATA_HOME: join(tmp.path, 'xdg-data'),
  }
  const link = await runCli(['plugins', 'link', ROOT, '--no-install'], {bin: hostBin, env: hostEnv})
  expect(link.code, link.stderr).toBe(0)

  const data = join(tmp.path, 'mo-data')
  await makeSmallDataDir(data)
  repo = join(tmp.path, 'repo')
  const backup = await runCli(['br', 'backup', '--path', repo, '--data-dir', data, '--no-encrypt', '--port', '1'], {
    bin: hostBin,
    env: hostEnv,
  })
  expect(backup.code, backup.stderr).toBe(0)
  backupId = backup.stdout.trim()
})

afterAll(async () => {
  await tmp?.cleanup()
})

describe('installed into a host CLI', () => {
  it('shows br commands in the host', async () => {
    const help = await runCli(['br', 'list', '--help'], {bin: hostBin, env: hostEnv})
    expect(help.code, help.stderr).toBe(0)
    expect(help.stdout).toContain('opsctl br list')
    expect(help.stdout).toContain('--path')
  })

  it('runs a real br list against a repository', async () => {
    const list = await runCli(['br', 'list', '--path', repo, '--json'], {bin: hostBin, env: hostEnv})
    expect(list.code, list.stderr).toBe(0)
    expect(JSON.parse(list.stdout).map((r: {id: string}) => r.id)).toEqual([backupId])
  })

  it("keeps the host's own plugins command, which lists this plugin", async () => {
    const plugins = await runCli(['plugins'], {bin: hostBin, env: hostEnv})
    expect(plugins.code, plugins.stderr).toBe(0)
    expect(plugins.stdout).toContain('@moctl/plugin-br')
    const inspect = await runCli(['plugins', 'inspect', '@moctl/plugin-br', '--json'], {bin: hostBin, env: hostEnv})
    expect(inspect.code, inspect.stderr).toBe(0)
    // Our plugin brings no child plugins: nothing of ours shadows the host's plugin-plugins.
    expect(JSON.parse(inspect.stdout)[0].children ?? []).toEqual([])
  })
})

const standaloneEnv = () => ({
  XDG_CACHE_HOME: join(tmp.path, 's-cache'),
  XDG_CONFIG_HOME: join(tmp.path, 's-config'),
  XDG_DATA_HOME: join(tmp.path, 's-data'),
})

describe('standalone moctl', () => {
  it('has help and plugins', async () => {
    const help = await runCli(['help', 'br'], {env: standaloneEnv()})
    expect(help.code, help.stderr).toBe(0)
    for (const cmd of ['br backup', 'br list', 'br restore', 'br verify', 'br key']) expect(help.stdout).toContain(cmd)
    const plugins = await runCli(['plugins'], {env: standaloneEnv()})
    expect(plugins.code, plugins.stderr).toBe(0)
    expect(plugins.stdout + plugins.stderr).toMatch(/no plugins installed/i)
  })
})
