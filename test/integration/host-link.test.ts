/**
 * The plugin linked into a host CLI (test/helpers/host.ts: its own `@oclif/core` and
 * `@oclif/plugin-plugins`, with `plugins link --no-install`), in a user's environment: production
 * mode (no NODE_ENV) and no OCLIF_DISABLE_LINKED_ESM_WARNING. Help with no warning about a linked
 * ESM module, and a real `br list` whose hint names the host's command. Small on purpose: it is
 * the Node 24 leg's host test (how a host loads a linked ESM plugin is the runtime's business);
 * the rest of the host's behaviour is host-plugin.test.ts, on Node 20.
 */
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {ROOT, runCli, tempDir, type TempDir} from '../helpers/cli.js'
import {installedHost, userEnv} from '../helpers/host.js'

let tmp: TempDir
let hostBin: string
let hostEnv: NodeJS.ProcessEnv

beforeAll(async () => {
  tmp = await tempDir('moctl-br-host-link-')
  hostBin = await installedHost()
  hostEnv = userEnv(join(tmp.path, 'host-user'))
  const link = await runCli(['plugins', 'link', ROOT, '--no-install'], {bin: hostBin, env: hostEnv})
  expect(link.code, link.stderr).toBe(0)
}, 600_000)

afterAll(async () => {
  await tmp?.cleanup()
})

describe('linked into a host CLI', () => {
  it('shows br commands in the host, with no warning about a linked ESM module', async () => {
    const help = await runCli(['br', 'list', '--help'], {bin: hostBin, env: hostEnv})
    expect(help.code, help.stderr).toBe(0)
    expect(help.stdout).toContain('opsctl br list')
    expect(help.stdout).toContain('--path')
    expect(help.stderr).toBe('')
  })

  it("names the host's command in its hints, not moctl", async () => {
    const missing = await runCli(['br', 'list', '--path', join(tmp.path, 'nowhere')], {bin: hostBin, env: hostEnv})
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('Hint: check --path; `opsctl br backup --path DIR` creates a repository')
  })
})
