import {Command, Errors, type Interfaces} from '@oclif/core'
import {join} from 'node:path'

import type {WriterOptions} from './lib/repo/maintenance.js'

import {isRequiredUnlessConfig, standsIn} from './flags.js'
import {configFile, type ConfigKey, flagDefault, isConfigKey, readConfig, yieldsTo} from './lib/config.js'
import {BrError, ExitCode, isBrError, usageError} from './lib/errors.js'
import {redact} from './lib/redact.js'
import {isS3Location, type RepoAddress} from './lib/repo/address.js'
import {ManifestCache} from './lib/repo/manifest-cache.js'
import {loadTrustedSigners} from './lib/secrets.js'
import {type Flow} from './lib/steps.js'
import {repoAddress, S3_ONLY_FLAGS, type S3FlagValues} from './repo-address.js'

/** oclif's parser output shapes (FlagOutput, ArgOutput), which its public interfaces do not export. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- as oclif declares them
type FlagOutput = {[name: string]: any}

/**
 * What every br command shares: --json, one mapping of errors to exit codes and messages, SIGINT
 * handling (the first Ctrl-C aborts and lets the flow roll back, then exit 130; a second one exits
 * at once), and defaults from `moctl br config` (lib/config.ts): before parsing, each flag named
 * like a config key that is set gets the file's value as its default, so a flag given on the
 * command line or through its environment variable still wins.
 */
export abstract class BrCommand extends Command {
  static override enableJsonFlag = true
  protected abortController = new AbortController()
  /** the flags whose value came from the config file, not the command line or the environment */
  private fromConfig = new Set<string>()
  private onSigint = () => {
    // A second Ctrl-C means 'now': the operator has chosen not to wait for the rollback.
    // eslint-disable-next-line n/no-process-exit, unicorn/no-process-exit
    if (this.abortController.signal.aborted) process.exit(ExitCode.interrupted)
    process.stderr.write('\ninterrupted: rolling back (Ctrl-C again to exit at once)\n')
    this.abortController.abort(new BrError('interrupted', 'interrupted'))
  }
  /** --quiet: no progress on stderr (warnings and errors still go there) */
  private quiet = false
  private warnedOfPassword = false
  private warnedOfSecretKey = false

  protected override async catch(error: Error & {exitCode?: number}): Promise<unknown> {
    if (this.jsonEnabled()) {
      process.exitCode = error.exitCode ?? (error as {oclif?: {exit?: number}}).oclif?.exit ?? ExitCode.error
      this.logJson(this.toErrorJson(error))
      return
    }

    // oclif's own errors (a flag conflict…) may quote a flag's value: a password among them.
    if (!isBrError(error)) return super.catch(Object.assign(error, {message: redact(error.message)}))
    const hints = this.hints(error.suggestions)
      .map((s) => `Hint: ${s}\n`)
      .join('')
    process.stderr.write(redact(`Error: ${error.message}\n${hints}`))
    this.exit(error.exitCode)
  }

  /**
   * Ends the command with `code` after its message was printed. oclif's final handler stays silent
   * for an ExitError only if it is an instance of its own copy of the class; a host CLI has its own
   * `@oclif/core`, whose handler would print our ExitError as `Error: EEXIT: 2` and `Code: EEXIT`.
   * `skipOclifErrorHandling` (oclif/core 2.4 and later) keeps any copy of the handler quiet, and it
   * still exits with `oclif.exit`.
   */
  public override exit(code = 0): never {
    const exit = new Errors.ExitError(code)
    exit.skipOclifErrorHandling = true
    throw exit
  }

  protected override async finally(error: Error | undefined): Promise<unknown> {
    process.off('SIGINT', this.onSigint)
    process.off('SIGTERM', this.onSigint)
    return super.finally(error)
  }

  public override async init(): Promise<void> {
    await super.init()
    process.on('SIGINT', this.onSigint)
    process.on('SIGTERM', this.onSigint)
  }

  /**
   * The --json result or error, as oclif prints it: pretty JSON and a newline. oclif builds it
   * token by token to colour it (colorizeJson), which takes 42 ms for `br list` of 100 backups and
   * 273 ms for 1,000, against 2-4 ms for JSON.stringify, for the same bytes whenever there is no
   * colour: that is left to oclif only for a terminal under a host CLI's JSON theme.
   */
  public override logJson(json: unknown): void {
    if (this.config.theme?.json && process.stdout.isTTY) {
      super.logJson(json)
      return
    }

    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`)
  }

  /** Warnings go to stderr and never under --json (stdout carries the result only). */
  protected note(message: string): void {
    if (!this.jsonEnabled()) process.stderr.write(`${redact(message)}\n`)
  }

  /** Parses with the config file's values as flag defaults (see the class comment). */
  protected override async parse<F extends FlagOutput, B extends FlagOutput, A extends FlagOutput>(
    options?: Interfaces.Input<F, B, A>,
    argv?: string[],
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    const input = options ?? (this.ctor as unknown as Interfaces.Input<F, B, A>)
    if (input.flags && 'password' in input.flags) this.warnOfPasswordInArgv(argv ?? this.argv)
    if (input.flags && 'secret-access-key' in input.flags) this.warnOfSecretKeyInArgv(argv ?? this.argv)
    const {takesConfigDefaults} = this.ctor as unknown as {takesConfigDefaults?: boolean}
    const defaults = takesConfigDefaults === false ? new Map() : await this.configDefaults(input.flags ?? {})
    if (defaults.size === 0) return this.checkParsed(input, await super.parse(options, argv))
    const flags = Object.fromEntries(
      Object.entries(input.flags ?? {}).map(([name, flag]) => [
        name,
        defaults.has(name) ? {...flag, default: defaults.get(name)} : flag,
      ]),
    ) as Interfaces.FlagInput<F>
    // A plain object, not the command class: the class's inherited statics would not survive a spread.
    const result = await super.parse(
      {
        '--': input['--'],
        args: input.args,
        baseFlags: input.baseFlags,
        constraints: input.constraints,
        enableJsonFlag: input.enableJsonFlag,
        flags,
        strict: input.strict,
      },
      argv,
    )
    // A file value gives way to a flag that chooses another way (--passphrase-file over the file's recipient).
    const given = (name: string) =>
      result.flags[name] !== undefined && result.flags[name] !== false && !result.metadata.flags[name]?.setFromDefault
    for (const name of defaults.keys()) {
      if (result.metadata.flags[name]?.setFromDefault) this.fromConfig.add(name)
      if (result.metadata.flags[name]?.setFromDefault && yieldsTo(name as ConfigKey).flags.some((f) => given(f))) {
        delete (result.flags as Record<string, unknown>)[name]
      }
    }

    return this.checkParsed(input, result)
  }

  /**
   * The repository the flags name (--path, or --bucket with mo_br's --backup_dir s3), with its S3
   * settings: checked before anything is opened (repo-address.ts). Config-file values give way
   * where they do not fit what the command line chose: the file's S3 settings are not applied to
   * a local --path, and the file's path not to a --bucket given here.
   */
  protected async repoAddress(
    flags: S3FlagValues & {path?: string},
    location: string | undefined = flags.path,
    flag = 'path',
  ): Promise<RepoAddress> {
    const values: S3FlagValues & {path?: string} = {...flags}
    let where = location
    if (flags.bucket !== undefined && !this.fromConfig.has('bucket') && this.fromConfig.has('path')) where = undefined
    const local = where !== undefined && flags.bucket === undefined && !isS3Location(where)
    if (local) for (const name of S3_ONLY_FLAGS) if (this.fromConfig.has(name)) delete values[name]
    return repoAddress(where, values, process.env, flag)
  }

  /** Runs a flow as a task tree on stderr: a terminal's tree, timestamped lines in a pipe, nothing under --json or --quiet. */
  protected async runFlow<C extends object>(flow: Flow<C>, ctx: C): Promise<C> {
    // listr2 is loaded only to draw a tree on a terminal (tasks.ts), never at start-up.
    const {renderModeFor, runFlowWithTasks} = await import('./lib/ui/tasks.js')
    return runFlowWithTasks(flow, ctx, {
      mode: renderModeFor({json: this.jsonEnabled(), quiet: this.quiet}),
      signal: this.abortController.signal,
    })
  }

  protected override toErrorJson(error: unknown): unknown {
    if (isBrError(error)) {
      return {
        error: {
          code: error.code,
          exitCode: error.exitCode,
          message: redact(error.message),
          suggestions: this.hints(error.suggestions).map((s) => redact(s)),
        },
      }
    }

    const err = error as Error & {oclif?: {exit?: number}}
    return {
      error: {
        code: 'error',
        exitCode: err.oclif?.exit ?? ExitCode.error,
        message: redact(err.message),
        suggestions: [],
      },
    }
  }

  /**
   * One `Warning: …` line on stderr, under --json too (oclif drops warnings there, and wraps them
   * at the terminal's width otherwise): a script parses stdout, and an operator reading its log
   * must still learn of a stale lock taken over or a failing listener, and be able to grep it.
   */
  public override warn(input: Error | string): Error | string {
    const message = redact(typeof input === 'string' ? input : input.message)
    process.stderr.write(`Warning: ${message}\n`)
    return input
  }

  /**
   * What delete and prune share: the manifest cache and the signers that say which records they
   * may rely on (--trusted-signer, --writer-key's own signer), warnings, the lock wait.
   */
  protected async writerOptions(flags: {
    'trusted-signer'?: string[]
    'wait-lock': number
    'writer-key'?: string
  }): Promise<WriterOptions> {
    return {
      cache: new ManifestCache(join(this.config.cacheDir, 'manifests')),
      onWarning: (message) => this.warn(message),
      signers: await loadTrustedSigners({
        env: process.env,
        trustedSigners: flags['trusted-signer'],
        writerKeyFile: flags['writer-key'],
      }),
      waitLockSeconds: flags['wait-lock'],
    }
  }

  /**
   * What every parse ends with: a flag the command cannot do without, which the config may give
   * (flags.ts requiredUnlessConfig), refused when neither flag, env nor config gave it; --quiet noted.
   */
  private checkParsed<F extends FlagOutput, B extends FlagOutput, A extends FlagOutput>(
    input: Interfaces.Input<F, B, A>,
    result: Interfaces.ParserOutput<F, B, A>,
  ): Interfaces.ParserOutput<F, B, A> {
    for (const [name, flag] of Object.entries(input.flags ?? {})) {
      if (result.flags[name] === undefined && isRequiredUnlessConfig(flag) && !standsIn(flag, result.flags)) {
        const env = flag.type === 'option' && flag.env ? `, set ${flag.env}` : ''
        throw usageError(
          `missing --${name}: ${flag.description?.replace(/ \(required.*$/, '') ?? 'required'}`,
          `pass --${name}${env}, or keep a default with \`moctl br config set ${name} …\``,
        )
      }
    }

    this.quiet = result.flags.quiet === true
    return result
  }

  /** Defaults for this command's flags from the config file; the file is read only if some flag could use it. */
  private async configDefaults(flags: Interfaces.FlagInput<FlagOutput>): Promise<Map<string, unknown>> {
    const defaults = new Map<string, unknown>()
    const keys = Object.keys(flags).filter((name): name is ConfigKey => isConfigKey(name))
    if (keys.length === 0) return defaults
    const values = await readConfig(configFile(this.config.configDir))
    for (const key of keys) {
      const value = values[key]
      const flag = flags[key]
      // exactlyOne groups count a default as given: restore names its target explicitly.
      if (value === undefined || flag.exactlyOne) continue
      if (yieldsTo(key).env.some((name) => process.env[name])) continue
      defaults.set(key, flagDefault(key, value, flag.type === 'option' && Boolean(flag.multiple)))
    }

    return defaults
  }

  /** Hints name commands as `moctl br …`; inside a host CLI they must name the host's bin. */
  private hints(suggestions: string[]): string[] {
    const {bin} = this.config
    return bin === 'moctl' ? suggestions : suggestions.map((s) => s.replaceAll('moctl br ', `${bin} br `))
  }

  /**
   * --password on the command line is in `ps` for every user of the host while the command runs
   * (and in shell history): say so, once, and name the safe ways. MO_PASSWORD fills the same flag
   * from the environment, so the command line itself is what is checked.
   */
  private warnOfPasswordInArgv(argv: string[]): void {
    if (this.warnedOfPassword || !flagInArgv(argv, ['--password'])) return
    this.warnedOfPassword = true
    this.warn(
      '--password on the command line is visible to every user of this host (ps, /proc): use --password-file FILE (mode 0600) or the MO_PASSWORD environment variable',
    )
  }

  /** mo_br's --secret_access_key puts the S3 secret in `ps` as --password does: accepted, with the same warning. */
  private warnOfSecretKeyInArgv(argv: string[]): void {
    if (this.warnedOfSecretKey || !flagInArgv(argv, ['--secret-access-key', '--secret_access_key'])) return
    this.warnedOfSecretKey = true
    this.warn(
      '--secret-access-key on the command line is visible to every user of this host (ps, /proc): use --secret-access-key-file FILE (mode 0600) or the AWS_SECRET_ACCESS_KEY environment variable',
    )
  }
}

/** Whether one of `names` is given in argv (as `--name X` or `--name=X`) before a `--`. */
function flagInArgv(argv: string[], names: string[]): boolean {
  const end = argv.indexOf('--')
  const args = end === -1 ? argv : argv.slice(0, end)
  return args.some((a) => names.some((name) => a === name || a.startsWith(`${name}=`)))
}
