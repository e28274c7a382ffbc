// The plugin's public surface for other code: the hook event types, so a host CLI's own plugins
// can listen to br:service:stop / br:service:start with typed options.
export type {BrHooks, ServiceHookOptions} from './hooks/types.js'
