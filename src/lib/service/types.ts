/**
 * Settings of the MO service around a backup or restore: how to stop and start it and how to
 * tell that it answers SQL again. Plain data, so it travels through oclif hook events.
 */

/** The values of --service: one controller each (controller.ts). */
export const SERVICE_KINDS = ['mo_ctl', 'systemd', 'command', 'none'] as const

export interface ServiceSettings {
  /** which controller stops and starts the service */
  kind: (typeof SERVICE_KINDS)[number]
  /** for kind mo_ctl: the mo_ctl script (default: mo_ctl on PATH) */
  moCtl?: string
  sql: SqlSettings
  /** for kind command: shell commands; start returns once the service is launching */
  startCommand?: string
  stopCommand?: string
  /** for kind systemd: the unit (default matrixone) */
  unit?: string
}

export interface SqlSettings {
  /** how long to wait for the service to answer SQL after a start */
  deadlineMs: number
  host: string
  password?: string
  port: number
  user: string
}

// A type alias, not an interface: oclif's hook options must be assignable to Record<string, unknown>.
export type ServiceHookOptions = {
  dataDir: string
  /** which command fired the event, e.g. 'br restore' */
  reason: string
  service: ServiceSettings
  /**
   * aborted on Ctrl-C: a listener ends what it runs (our hooks kill the command's process group).
   * oclif's runHook has no signal of its own, so the command passes its own through the event.
   */
  signal?: AbortSignal
}
