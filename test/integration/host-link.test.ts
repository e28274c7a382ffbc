/**
 * The plugin linked into a host CLI (test/helpers/host.ts: its own `@oclif/core` and
 * `@oclif/plugin-plugins`, with `plugins link --no-install`), in a user's environment: production
 * mode (no NODE_ENV). Help in the host, with oclif's one notice that the linked ESM plugin runs
 * its compiled dist/ (and none with OCLIF_DISABLE_LINKED_ESM_WARNING=1, as the README says), and
 * a real `br list` whose hint names the host's command. The notice is also the proof that oclif
 * took its short way: with `tsx` among our devDependencies it stayed quiet but loaded TypeScript's
 * compiler and tried tsx and ts-node on every command (1.4-1.7 s a command against 0.55).
 * Small on purpose: it is the Node 24 leg's host test (how a host loads a linked ESM plugin is
 * the runtime's business); the rest of the host's behaviour is host-plugin.test.ts, on Node 20.
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
  it("shows br commands in the host, with only oclif's notice that the linked plugin runs its compiled dist/", async () => {
    const help = await runCli(['br', 'list', '--help'], {bin: hostBin, env: hostEnv})
    expect(help.code, help.stderr).toBe(0)
    expect(help.stdout).toContain('opsctl br list')
    expect(help.stdout).toContain('--path')
    // oclif wraps the warning to the terminal's width: compare it as one line.
    const notice = help.stderr
      .replaceAll(/\s*›\s*/g, ' ')
      .replaceAll(/\s+/g, ' ')
      .trim()
    expect(notice).toBe(
      'Warning: @moctl/plugin-br is a linked ESM module and cannot be auto-transpiled. Existing compiled source will be used instead.',
    )
    const quiet = await runCli(['br', 'list', '--help'], {
      bin: hostBin,
      env: {...hostEnv, OCLIF_DISABLE_LINKED_ESM_WARNING: '1'},
    })
    expect(quiet.code, quiet.stderr).toBe(0)
    expect(quiet.stdout).toBe(help.stdout)
    expect(quiet.stderr).toBe('')
  })

  it("names the host's command in its hints, not moctl", async () => {
    const missing = await runCli(['br', 'list', '--path', join(tmp.path, 'nowhere')], {bin: hostBin, env: hostEnv})
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('Hint: check --path; `opsctl br backup --path DIR` creates a repository')
  })
})
