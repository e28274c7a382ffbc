// Types of bench/profile.mjs for the tests that import it (test/unit/scripts/bench-tools.test.ts).
export const STAGES: string[]
export interface StageSummary {
  mainMs: number
  ms: Record<string, number>
  threads: number
}
export function profileRun(
  label: string,
  argv: string[],
  dir: string,
  options?: object,
): StageSummary & {processMs: number}
export function summarise(dir: string): StageSummary
export function stageTable(rows: Array<StageSummary & {label: string; processMs?: number}>): string
