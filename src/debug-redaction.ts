/**
 * Keeps secrets out of `DEBUG=*` output. oclif and our hooks log through the `debug` package;
 * this replaces that package's writer (for every instance, the namespaces of other plugins
 * included) with one that passes each line through redactCommand (lib/redact.ts) first: the
 * values of our secret environment variables, any password (or S3 secret key) registered so far, anything shaped
 * like an age secret key or a password argument (`-pSECRET`, `--password=…`) become ***.
 *
 * It is installed by bin/run.js before oclif starts (oclif logs process.argv first thing), and
 * by our `init` hook inside a host CLI, where the host's bin has already logged argv by then:
 * `--password` on a host's command line can reach its debug output (the CLI warns against it).
 */
import {createRequire} from 'node:module'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {formatWithOptions, type InspectOptions} from 'node:util'

import {redactCommand, registerSecret} from './lib/redact.js'

interface DebugModule {
  inspectOpts?: InspectOptions
  log: (...args: unknown[]) => unknown
}

const patched = new WeakSet<object>()
/** this plugin's own package root, where its own @oclif/core resolves */
const OWN_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')

/**
 * Registers the passwords given in `argv` and redacts the output of the `debug` copies that the
 * oclif core of each root (and of this plugin) loads. Idempotent.
 */
export function redactDebugOutput(argv: string[], roots: string[] = []): void {
  for (const secret of passwordsInArgv(argv)) registerSecret(secret)
  for (const root of [...roots, OWN_ROOT]) {
    const debug = debugModuleOf(root)
    if (!debug || patched.has(debug)) continue
    patched.add(debug)
    debug.log = (...args: unknown[]) =>
      process.stderr.write(redactCommand(formatWithOptions(debug.inspectOpts ?? {}, ...args)) + '\n')
  }
}

/** The flags whose value is a secret given on the command line (accepted, with a warning). */
const SECRET_FLAGS = ['--password', '--secret-access-key', '--secret_access_key']

/**
 * The values of --password and of mo_br's --secret_access_key in argv, given as `--flag X` or
 * `--flag=X`, up to a `--`.
 */
export function passwordsInArgv(argv: string[]): string[] {
  const values: string[] = []
  for (const [i, arg] of argv.entries()) {
    if (arg === '--') break
    for (const flag of SECRET_FLAGS) {
      if (arg === flag && i + 1 < argv.length) values.push(argv[i + 1])
      else if (arg.startsWith(`${flag}=`)) values.push(arg.slice(flag.length + 1))
    }
  }

  return values
}

/** The `debug` module that the @oclif/core found from `root` loads, if any. */
function debugModuleOf(root: string): DebugModule | undefined {
  try {
    const core = createRequire(join(root, 'package.json')).resolve('@oclif/core')
    const debug = createRequire(core)('debug') as DebugModule
    return typeof debug?.log === 'function' ? debug : undefined
  } catch {
    return undefined
  }
}
