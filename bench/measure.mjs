// What the benches measure with: a command's wall time and peak RSS under GNU time, and the bytes
// of a data dir a backup reads. Shared by bench/backup.mjs and bench/s3.mjs.
import {spawnSync} from 'node:child_process'

/** Runs argv under GNU time; returns wall seconds, peak RSS (MiB) and its stdout. Fails loudly. */
export function timed(label, argv) {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', ...argv], {encoding: 'utf8', maxBuffer: 64 * 1024 * 1024})
  if (r.status !== 0) throw new Error(`${label} failed (${r.status}): ${r.stdout.slice(-1000)}${r.stderr.slice(-2000)}`)
  const [wall, rssKb] = r.stderr.trim().split('\n').at(-1).split(' ').map(Number)
  return {label, rssMiB: rssKb / 1024, stdout: r.stdout, wall}
}

/** Bytes of the regular files under `dir`, but for the folders a backup leaves out by default. */
export function duBytes(dir, excl = ['shared-cache', 'tmp']) {
  const r = spawnSync(
    'sh',
    [
      '-c',
      `cd '${dir}' && find . -type f ${excl.map((e) => `-not -path './${e}/*'`).join(' ')} -printf '%s\\n' | awk '{s+=$1} END {print s}'`,
    ],
    {encoding: 'utf8'},
  )
  return Number(r.stdout.trim())
}
