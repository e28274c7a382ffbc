#!/usr/bin/env node
// `npm test`'s build and type-check in one TypeScript program: `npm run build` (tsc -p
// tsconfig.build.json) and `npm run typecheck` (tsc -p tsconfig.json --noEmit) each parse and
// check src/ and the ~180k lines of declarations it imports (the AWS SDK's most of all), so
// running both did that work twice. Here tsconfig.json's program (src, test, vitest.config.ts) is
// checked once and src/ is emitted from it.
//
// Guarantees: dist/ is byte for byte what `tsc -p tsconfig.build.json` writes (same options, and
// the source maps' paths rewritten from tsconfig.json's rootDir `.` to the build's `src`);
// oclif.manifest.json is written as `npm run build` writes it; every diagnostic either tsc run
// reports is printed, in tsc's format. Exit 0: no diagnostics; 1: a diagnostic in src/ or in the
// options (the build failed: tsc would exit non-zero, and nothing is emitted); 2: diagnostics
// only in test/ or vitest.config.ts (dist/ is built; the type-check failed).
// Not: incremental (a clean clone has nothing to reuse), nor a replacement for `npm run build`
// and `npm run typecheck`, which stay what a developer runs.
import {spawnSync} from 'node:child_process'
import {mkdirSync, rmSync, writeFileSync} from 'node:fs'
import {dirname, isAbsolute, join, relative, resolve, sep} from 'node:path'
import {fileURLToPath} from 'node:url'
import ts from 'typescript'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const parse = (file) => {
  const parsed = ts.getParsedCommandLineOfConfigFile(
    join(root, file),
    {},
    {...ts.sys, onUnRecoverableConfigFileDiagnostic: fail},
  )
  if (parsed.errors.length > 0) fail(parsed.errors)
  return parsed
}

const host = ts.createCompilerHost({})
function fail(diagnostics) {
  process.stderr.write(ts.formatDiagnostics([diagnostics].flat(), host))
  process.exit(1)
}

const all = parse('tsconfig.json')
const build = parse('tsconfig.build.json')
// What the build may differ in: where it reads from and writes to. Anything else would make dist/
// differ from `npm run build`'s.
const LAYOUT = new Set(['configFilePath', 'outDir', 'rootDir'])
for (const name of new Set([...Object.keys(all.options), ...Object.keys(build.options)])) {
  if (!LAYOUT.has(name) && JSON.stringify(all.options[name]) !== JSON.stringify(build.options[name]))
    fail({
      category: ts.DiagnosticCategory.Error,
      code: 0,
      file: undefined,
      length: undefined,
      messageText: `tsconfig.build.json sets ${name} unlike tsconfig.json: scripts/build-check.mjs emits dist/ from tsconfig.json's program, so keep the two alike`,
      start: undefined,
    })
}

const srcDir = build.options.rootDir
const distDir = build.options.outDir
const shared = all.options.outDir
const built = new Set(build.fileNames.map((f) => resolve(f)))
const missing = [...built].filter((f) => !all.fileNames.some((g) => resolve(g) === f))
if (missing.length > 0) throw new Error(`tsconfig.json does not include ${missing.join(', ')}`)

const program = ts.createProgram({host, options: all.options, rootNames: all.fileNames})
const diagnostics = [...ts.getPreEmitDiagnostics(program)]

/** Where `tsc -p tsconfig.build.json` puts what tsconfig.json's program puts at `path`. */
const moved = (path) => join(distDir, relative(join(shared, relative(all.options.rootDir, srcDir)), path))
const inside = (dir, path) => !relative(dir, path).startsWith('..') && !isAbsolute(relative(dir, path))

rmSync(distDir, {force: true, recursive: true})
rmSync(join(root, 'oclif.manifest.json'), {force: true})
const srcErrors = diagnostics.some((d) => !d.file || inside(srcDir, d.file.fileName))
if (!srcErrors) {
  const writeFile = (path, text) => {
    const to = moved(path)
    if (to.endsWith('.map')) {
      // sources are relative to the map: the same files, seen from dist/ instead of dist/src/.
      const map = JSON.parse(text)
      map.sources = map.sources.map((s) =>
        relative(dirname(to), resolve(dirname(path), s))
          .split(sep)
          .join('/'),
      )
      text = JSON.stringify(map)
    }

    mkdirSync(dirname(to), {recursive: true})
    writeFileSync(to, text)
  }

  for (const file of program.getSourceFiles()) {
    if (!built.has(resolve(file.fileName)) || file.isDeclarationFile) continue
    diagnostics.push(...program.emit(file, writeFile).diagnostics)
  }
}

if (diagnostics.length > 0)
  process.stderr.write(ts.formatDiagnostics(ts.sortAndDeduplicateDiagnostics(diagnostics), host))
const failedBuild = srcErrors || diagnostics.some((d) => !d.file || inside(srcDir, d.file.fileName))
if (failedBuild) process.exit(1)
const manifest = spawnSync(process.execPath, [join(root, 'scripts', 'manifest.mjs')], {stdio: 'inherit'})
if (manifest.status !== 0) process.exit(1)
process.exit(diagnostics.length > 0 ? 2 : 0)
