/**
 * A proof that a CLI process does not import a module: NODE_OPTIONS for a module resolve hook
 * (node:module register) that appends every specifier containing `match` (or one of several) to
 * the file named by the environment variable `logVariable`. A test runs the CLI with these options
 * and reads the log; the same hook in a process that does import the module must log it (the
 * control), so an empty log means something. Logs are files in the dir the hook was written to.
 */
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'

/** A resolve logger: the environment of a run that logs to `log`, and what a run logged there ('' for none). */
export interface ResolveLogger {
  env(log: string): NodeJS.ProcessEnv
  read(log: string): Promise<string>
}

/** Writes the hook into `dir`; runs get it through NODE_OPTIONS and their log's path in `logVariable`. */
export async function resolveLogger(
  dir: string,
  match: string | string[],
  logVariable: string,
): Promise<ResolveLogger> {
  const name = `resolve-log-${logVariable}`
  await writeFile(
    join(dir, `${name}-hooks.mjs`),
    `import {appendFileSync} from 'node:fs'
export async function resolve(specifier, context, next) {
  if (${JSON.stringify([match].flat())}.some((m) => specifier.includes(m))) appendFileSync(process.env.${logVariable}, specifier + '\\n')
  return next(specifier, context)
}
`,
  )
  await writeFile(
    join(dir, `${name}.mjs`),
    `import {register} from 'node:module'\nregister(${JSON.stringify(pathToFileURL(join(dir, `${name}-hooks.mjs`)).href)})\n`,
  )
  const nodeOptions = `--import ${pathToFileURL(join(dir, `${name}.mjs`)).href}`
  return {
    env: (log) => ({[logVariable]: join(dir, log), NODE_OPTIONS: nodeOptions}),
    read: async (log) => readFile(join(dir, log), 'utf8').catch(() => ''),
  }
}
