/**
 * What a backup or restore flow needs of the service, as plain callbacks: the command fills them
 * (stop and start go through oclif hook events, readiness through SQL), tests fill them directly.
 * `null` means the service is not managed (--service none).
 */
export interface ServiceControl {
  /** a short description for progress lines, e.g. 'command: mo_ctl stop' */
  describe: string
  /** databases visible over SQL, for the post-restore check */
  listDatabases(signal: AbortSignal): Promise<string[]>
  start(signal: AbortSignal): Promise<void>
  /** how an operator starts it by hand (a shell command line), said when a run that stopped it died */
  startHint?: string
  stop(signal: AbortSignal): Promise<void>
  /** waits until the service answers SQL, within the configured deadline */
  waitReady(signal: AbortSignal): Promise<{elapsedMs: number; version: string}>
}
