#!/usr/bin/env node
// `node bench/make-repo.mjs REPO N`: a local repository of N small full backups (one file more
// each), made in process with the library from dist/ (npm run build first), unencrypted, as the
// packer writes them. For bench/backup.mjs's `br list` timing: what list reads is the records.
import {mkdirSync, writeFileSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const [repoDir, count = '100'] = process.argv.slice(2)
const usage = 'usage: node bench/make-repo.mjs REPO N (a new directory, and how many backups to make in it)'
// `--help` is no directory to fill (it made a repository named --help, and its data dir, once).
if (repoDir === '--help' || repoDir === '-h') {
  console.log(usage)
  process.exit(0)
}

if (!repoDir || repoDir.startsWith('-') || !Number.isInteger(Number(count)) || !(Number(count) > 0)) {
  console.error(
    `bench/make-repo.mjs: ${repoDir?.startsWith('-') ? `${repoDir} is no flag of this script` : 'REPO and N'}; ${usage}`,
  )
  process.exit(2)
}

const dist = (path) => import(pathToFileURL(join(root, 'dist', 'lib', path)).href)
const {backupFlow, excludeList} = await dist('backup/backup.js')
const {localRepo} = await dist('repo/address.js')
const {runFlow} = await dist('steps.js')

const data = `${resolve(repoDir)}-data`
mkdirSync(data, {recursive: true})
for (let i = 0; i < Number(count); i++) {
  writeFileSync(join(data, `f${i}`), `file ${i}\n`)
  const backup = backupFlow({
    checksum: false,
    clone: false,
    dataDir: data,
    decrypt: {identities: [], passphrases: []},
    encrypt: {type: 'none'},
    exclude: excludeList([], {defaults: true}),
    force: false,
    level: 1,
    lockWaitSeconds: 0,
    mode: 'cold',
    parallelism: 1,
    repo: localRepo(resolve(repoDir)),
    service: null,
    signing: null,
    type: 'full',
  })

  await runFlow(backup.flow, backup.ctx)
}
