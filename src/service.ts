/**
 * Turns the service flags into the ServiceControl a flow calls. Stop and start fire the oclif
 * hook events br:service:stop / br:service:start (our hooks in src/hooks/ act on them, and other
 * plugins of a host CLI may listen too); readiness and the database list are SQL via mysql2.
 */
import type {Config} from '@oclif/core'

import type {BrHooks} from './hooks/types.js'
import type {ServiceControl} from './lib/service/control.js'

import {BrError, usageError} from './lib/errors.js'
import {checkServiceSettings, createController} from './lib/service/controller.js'
import {isAnsweringSql, listDatabases, waitForSql} from './lib/service/sql.js'
import {SERVICE_KINDS, type ServiceSettings} from './lib/service/types.js'

export interface ServiceFlagValues {
  host: string
  'mo-ctl'?: string
  password?: string
  port: number
  service: string
  'sql-timeout': number
  'start-cmd'?: string
  'stop-cmd'?: string
  unit?: string
  user: string
}

/** The service flags as ServiceSettings; a usage error (exit 2) when the chosen kind cannot work here. */
export function serviceSettingsFrom(flags: ServiceFlagValues): ServiceSettings {
  const kind = flags.service as ServiceSettings['kind']
  if (!SERVICE_KINDS.includes(kind)) {
    throw usageError(`unknown --service ${flags.service}`, `use one of: ${SERVICE_KINDS.join(', ')}`)
  }

  const settings: ServiceSettings = {
    kind,
    moCtl: flags['mo-ctl'],
    sql: {
      deadlineMs: flags['sql-timeout'] * 1000,
      host: flags.host,
      password: flags.password,
      port: flags.port,
      user: flags.user,
    },
    startCommand: flags['start-cmd'],
    stopCommand: flags['stop-cmd'],
    unit: flags.unit,
  }
  checkServiceSettings(settings)
  return settings
}

export function serviceControl(
  config: Config,
  settings: ServiceSettings,
  dataDir: string,
  reason: string,
): null | ServiceControl {
  if (settings.kind === 'none') return null
  const fire = async (event: 'br:service:start' | 'br:service:stop') => {
    const result = await config.runHook<typeof event, BrHooks>(event, {dataDir, reason, service: settings})
    const failure = result.failures[0]
    if (failure) {
      throw failure.error instanceof BrError
        ? failure.error
        : new BrError('service', `${event} hook of ${failure.plugin.name} failed: ${failure.error.message}`)
    }
  }

  return {
    describe: createController(settings).describe(),
    listDatabases: () => listDatabases(settings.sql),
    start: () => fire('br:service:start'),
    stop: () => fire('br:service:stop'),
    waitReady: (signal) => waitForSql(settings.sql, {signal}),
  }
}

/** For --service none: is something answering SQL where the service would be? */
export const sqlProbe = (settings: ServiceSettings) => () => isAnsweringSql(settings.sql)
