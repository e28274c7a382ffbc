/**
 * Loads a heavy dependency on first use, not when the CLI starts: every command pays for what it
 * imports at start-up (mysql2 ~80 ms, age-encryption ~120 ms of CPU), and most commands never
 * open a SQL connection or an age header.
 *
 * Guarantees: each module is imported at most once per process (the promise is kept); a module
 * that cannot be loaded is a plain BrError naming it and the fix, not a bare resolution error.
 * Not: a plugin system: the names are our own dependencies, fixed in package.json.
 */
import {BrError} from './errors.js'

/** A function that imports `load` once, on its first call, and returns the module after that. */
export function lazyModule<T>(name: string, load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined
  return async () => {
    loading ??= load().catch((error: unknown) => {
      loading = undefined
      throw new BrError('error', `cannot load ${name}: ${error instanceof Error ? error.message : String(error)}`, {
        cause: error,
        suggestions: ['reinstall moctl br (npm ci), which installs its dependencies'],
      })
    })
    return loading
  }
}
