// Types of bench/measure.mjs for the tests that import it (test/unit/scripts/bench-tools.test.ts).
export interface Timed {
  cpu: number
  label: string
  rssMiB: number
  stderr: string
  stdout: string
  wall: number
}
export function timed(label: string, argv: string[], options?: object): Timed
export function median(values: number[]): number
export function summary(
  label: string,
  runs: Timed[],
): {cpu: number; label: string; rssMiB: number; runs: number[]; wall: number}
export function duBytes(dir: string, excl?: string[]): number
export function parseSize(text: string): number
export function freeBytes(dir: string): number
export function argValue(argv: string[], name: string, fallback: string): string
export function stepTimes(log: string): Record<string, number>
export const TUNED_MALLOC: string
export function onGlibc(): boolean
export function mallocEnvs(
  env: NodeJS.ProcessEnv,
  glibc?: boolean,
): {plain: NodeJS.ProcessEnv; tuned: NodeJS.ProcessEnv | undefined}
