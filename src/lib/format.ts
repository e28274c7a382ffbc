/** Human formatting shared by progress lines and tables. */

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }

  return unit === 0 ? `${bytes} B` : `${value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`
  const s = ms / 1000
  if (s < 60) return `${s.toFixed(1)}s`
  const m = Math.floor(s / 60)
  return `${m}m${Math.round(s - m * 60)}s`
}

/** "files 12/40, 1.2 GiB/3.0 GiB, 180 MB/s" */
export function formatProgress(
  p: {bytesDone: number; bytesTotal: number; filesDone: number; filesTotal: number},
  elapsedMs: number,
): string {
  const mbps = elapsedMs > 0 ? p.bytesDone / 1e6 / (elapsedMs / 1000) : 0
  return `files ${p.filesDone}/${p.filesTotal}, ${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)}, ${mbps.toFixed(0)} MB/s`
}
