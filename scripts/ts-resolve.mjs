// A module resolve hook for Node 24, which runs TypeScript files itself (type stripping) but
// takes `./x.js` to mean x.js: where x.js is missing, it resolves `./x.ts`, the file TypeScript
// compiles to x.js. scripts/node24.sh imports test/helpers/host.ts with it; nothing else uses it.
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context)
  } catch (error) {
    if (error?.code !== 'ERR_MODULE_NOT_FOUND' || !specifier.startsWith('.') || !specifier.endsWith('.js')) throw error
    return next(`${specifier.slice(0, -3)}.ts`, context)
  }
}
