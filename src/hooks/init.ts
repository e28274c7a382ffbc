import type {Hook} from '@oclif/core'

import {redactDebugOutput} from '../debug-redaction.js'

/**
 * init — before any command runs: keeps our secrets out of `DEBUG=*` output from here on (see
 * src/debug-redaction.ts). Our own bin has done it already; inside a host CLI this is the first
 * moment the plugin runs.
 */
const hook: Hook<'init'> = async function (options) {
  redactDebugOutput(options.argv, [this.config.root])
}

export default hook
