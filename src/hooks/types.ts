import type {Hooks} from '@oclif/core/interfaces'

import type {ServiceHookOptions} from '../lib/service/types.js'

/** The plugin's custom hook events; other plugins of a host CLI may listen to them too. */
export interface BrHooks extends Hooks {
  'br:service:start': {options: ServiceHookOptions; return: void}
  'br:service:stop': {options: ServiceHookOptions; return: void}
}

export type {ServiceHookOptions} from '../lib/service/types.js'
