#!/usr/bin/env node
// `npm test`'s lint: `node scripts/lint.mjs eslint|prettier CACHE_DIR` runs `eslint .` or
// `prettier --check .` with its results cache in CACHE_DIR (scripts/test.sh gives the machine's
// test cache, scripts/test-cache.sh), so a clean clone re-checks only the files whose content it
// has not seen checked before: the two cost about 70 CPU-s a run, nearly all of it on files that
// did not change since the last run.
//
// Guarantees: the same findings and exit code as the uncached command. Both tools cache per file
// and compare the file's content (--cache-strategy content) and their own configuration and
// version; what they do not see is put into the cache's name, so a change to it starts a new
// cache: for both, the config files and package-lock.json (the plugins' and parsers' versions,
// and what node_modules holds); for eslint also the list of the checkout's files, because
// import/no-unresolved and eslint-plugin-n's rules look at other files' existence and at
// package.json, and, when a file re-exports another (`export * from`, which import/export reads),
// every file's content. No rule we run reads another file's content otherwise (no typed rules;
// import/named, namespace and default are off: eslint.config.js).
// Not: a cache outside a git checkout (the file list comes from git): there it runs uncached.
import {execFileSync, spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const TOOLS = {
  eslint: {args: ['.'], bin: 'node_modules/eslint/bin/eslint.js', fileList: true},
  prettier: {args: ['--check', '.'], bin: 'node_modules/prettier/bin/prettier.cjs', fileList: false},
}
const CONFIG = [
  '.gitignore',
  '.prettierignore',
  '.prettierrc.json',
  'eslint.config.js',
  'package-lock.json',
  'package.json',
  'tsconfig.build.json',
  'tsconfig.json',
]
// A cache not used for this long is deleted when another is written.
const KEEP_DAYS = 14

const [name, cacheDir] = process.argv.slice(2)
const tool = TOOLS[name]
if (!tool || !cacheDir) {
  console.error(`usage: node scripts/lint.mjs ${Object.keys(TOOLS).join('|')} CACHE_DIR`)
  process.exit(2)
}

const run = (extra) =>
  spawnSync(process.execPath, [join(root, tool.bin), ...extra, ...tool.args], {cwd: root, stdio: 'inherit'}).status ?? 1

/** The checkout's files (tracked, and untracked but not ignored), sorted; null outside git. */
function files() {
  try {
    const out = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
      cwd: root,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    })
    return [...new Set(out.split('\0').filter(Boolean))].sort()
  } catch {
    return null
  }
}

const listed = files()
if (!listed) process.exit(run([]))
const hash = createHash('sha256').update(`${name}\0${process.version}\0`)
for (const file of CONFIG)
  hash.update(`${file}\0${existsSync(join(root, file)) ? readFileSync(join(root, file)) : ''}\0`)
if (tool.fileList) {
  const present = listed.filter((file) => existsSync(join(root, file)))
  hash.update(present.join('\0'))
  const code = /\.(?:[cm]?[jt]s|tsx?)$/
  const reexports = present.some(
    (file) => code.test(file) && /^\s*export\s*\*/m.test(readFileSync(join(root, file), 'utf8')),
  )
  if (reexports) for (const file of present) hash.update(readFileSync(join(root, file)))
}

const stored = join(cacheDir, `${name}-${hash.digest('hex').slice(0, 32)}.json`)
// The tools store absolute paths: the cache keeps ROOT in their place, so another checkout's path fits.
const ROOT = '<checkout>'
const local = join(root, '.tmp', `${name}-cache.json`)
mkdirSync(dirname(local), {recursive: true})
if (existsSync(stored)) writeFileSync(local, readFileSync(stored, 'utf8').replaceAll(`"${ROOT}/`, `"${root}/`))
else rmSync(local, {force: true})

const status = run(['--cache', '--cache-strategy', 'content', '--cache-location', local])
if (existsSync(local)) {
  mkdirSync(cacheDir, {recursive: true})
  const temp = `${stored}.${process.pid}`
  writeFileSync(temp, readFileSync(local, 'utf8').replaceAll(`"${root}/`, `"${ROOT}/`))
  renameSync(temp, stored)
  for (const entry of readdirSync(cacheDir)) {
    const path = join(cacheDir, entry)
    if (Date.now() - statSync(path).mtimeMs > KEEP_DAYS * 86_400_000) rmSync(path, {force: true})
  }
}

process.exit(status)
