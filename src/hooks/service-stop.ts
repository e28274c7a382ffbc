import type {Hook} from '@oclif/core'

import type {BrHooks} from './types.js'

import {createController} from '../lib/service/controller.js'

/**
 * br:service:stop — stops the MO service with the controller `--service` chose. Throws a BrError:
 * it carries oclif.exit 5, so runHook rethrows it to the command (a plain Error would only land in
 * `failures`). Logs with debug only (redacted: src/debug-redaction.ts): stdout belongs to the
 * command's data. `options.signal` is the command's Ctrl-C: the command's process group is killed.
 */
const hook: Hook<'br:service:stop', BrHooks> = async function (options) {
  const controller = createController(options.service)
  this.debug(`stopping the service for ${options.reason} (data dir ${options.dataDir}): ${controller.describe()}`)
  await controller.stop(options.signal)
  this.debug('service stopped')
}

export default hook
