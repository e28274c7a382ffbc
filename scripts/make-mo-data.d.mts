export function parseSize(s: number | string | undefined, fallback: number): number
export function createMoData(dir: string, options?: {seed?: number; size?: number | string}): void
export function mutateMoData(
  dir: string,
  options?: {add?: number | string; gc?: number | string; seed?: number; wal?: number | string},
): {added: boolean; removed: string[]}
