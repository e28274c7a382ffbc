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

/** A time left, to the second: "45s", "4m05s", "2h03m". */
const pad = (n: number) => String(n).padStart(2, '0')

export function formatEta(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`
  return `${Math.floor(s / 3600)}h${pad(Math.floor(s / 60) % 60)}m`
}

/**
 * "42%, files 12/40, 1.2 GiB/3.0 GiB, 180 MB/s, ETA 12s": the percent and the ETA by bytes
 * (by files when the bytes are unknown), the ETA once a second of work gives a rate to go by.
 */
export function formatProgress(
  p: {bytesDone: number; bytesTotal: number; filesDone: number; filesTotal: number},
  elapsedMs: number,
): string {
  const fraction = p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : p.filesTotal > 0 ? p.filesDone / p.filesTotal : null
  const parts: string[] = []
  if (fraction !== null) parts.push(`${Math.floor(Math.min(1, Math.max(0, fraction)) * 100)}%`)
  parts.push(p.filesTotal > 0 ? `files ${p.filesDone}/${p.filesTotal}` : `files ${p.filesDone}`)
  if (p.bytesTotal > 0) {
    const mbps = elapsedMs > 0 ? p.bytesDone / 1e6 / (elapsedMs / 1000) : 0
    parts.push(`${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)}`, `${mbps.toFixed(0)} MB/s`)
  }

  if (fraction !== null && fraction > 0 && fraction < 1 && elapsedMs >= 1000) {
    parts.push(`ETA ${formatEta((elapsedMs * (1 - fraction)) / fraction)}`)
  }

  return parts.join(', ')
}

/** A log line's time: UTC to the second, "2026-12-01T01:02:03Z". */
export function logTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')
}
