/**
 * Owners of the files of a backup: recorded by the scan (uid, gid and their names on the backup
 * host), given back by a restore the way `tar --same-owner` does.
 *
 * Guarantees: names are looked up through the system's name service (`getent`, so LDAP or sssd
 * accounts count as they do for tar), or /etc/passwd and /etc/group where getent is missing,
 * once per distinct id or name; a restore as root gives each entry the uid of its user's name
 * when that name exists on this host, its recorded number otherwise (the same for groups);
 * `--chown` gives everything one owner, checked before anything is extracted or stopped; a
 * restore as another user changes no owner and says so, once, when the backup had others. An
 * entry with no recorded owner (a manifest written before owners were recorded) keeps the
 * restoring user's, unless `--chown` says otherwise. Not: user namespaces or ACLs.
 */
import {execFile} from 'node:child_process'
import {readFile} from 'node:fs/promises'

import type {Breather} from './breather.js'
import type {Owner} from './types.js'

import {usageError} from '../errors.js'
import {childEnv} from '../redact.js'

/** A numeric owner, as chown takes it. */
export interface Ids {
  gid: number
  uid: number
}

interface Account {
  /** a user's login group; undefined for a group */
  gid?: number
  id: number
  name: string
}

type Database = 'group' | 'passwd'

/**
 * One line of the passwd or group database for `key` (a name, or an id in decimal), through
 * getent; undefined when there is none. A name that is all digits is looked up as a name only
 * when the database has no such id (getent takes digits for an id): names are matched exactly.
 */
async function lookup(db: Database, key: string): Promise<Account | undefined> {
  const line = await getent(db, key)
  if (line === undefined) return undefined
  const fields = line.split(':')
  const id = Number(fields[2])
  if (fields.length < 3 || !Number.isInteger(id)) return undefined
  return {gid: db === 'passwd' ? Number(fields[3]) : undefined, id, name: fields[0]}
}

async function getent(db: Database, key: string): Promise<string | undefined> {
  try {
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile('getent', [db, key], {env: childEnv(), timeout: 30_000}, (error, out) =>
        error ? reject(error) : resolve(out),
      )
    })
    return stdout.split('\n')[0] || undefined
  } catch (error) {
    const {code} = error as {code?: number | string}
    // getent exits 2 when the key is not found
    if (code === 2) return undefined
    if (code !== 'ENOENT') throw error
  }

  // No getent (a minimal container): the files themselves.
  const text = await readFile(`/etc/${db}`, 'utf8').catch(() => '')
  const lines = text.split('\n').filter((l) => !l.startsWith('#'))
  return lines.find((l) => l.split(':')[0] === key) ?? lines.find((l) => l.split(':')[2] === key)
}

/** Cached lookups: a data dir has a handful of owners, a restore a handful of names. */
export class Accounts {
  private readonly cache = new Map<string, Promise<Account | undefined>>()

  group(key: number | string): Promise<Account | undefined> {
    return this.get('group', String(key), typeof key === 'number')
  }

  user(key: number | string): Promise<Account | undefined> {
    return this.get('passwd', String(key), typeof key === 'number')
  }

  private get(db: Database, key: string, byId: boolean): Promise<Account | undefined> {
    const cacheKey = `${db}\0${byId ? 'id' : 'name'}\0${key}`
    let found = this.cache.get(cacheKey)
    if (!found) {
      found = lookup(db, key).then((a) => (a && (byId ? String(a.id) === key : a.name === key) ? a : undefined))
      this.cache.set(cacheKey, found)
    }

    return found
  }
}

/**
 * The owners a scan meets: one shared Owner object per (uid, gid), so a million entries hold a
 * few objects; names are filled in once the walk is over (`name()`), from lookups started when an
 * owner is first met: the getent children run while the walk goes on, not after it.
 */
export class OwnerTable {
  private readonly owners = new Map<string, Owner>()

  constructor(private readonly accounts = new Accounts()) {}

  /** Looks up the names of every owner met, '' for an id this host has no name for. */
  async name(): Promise<void> {
    await Promise.all(
      [...this.owners.values()].map(async (owner) => {
        const [user, group] = await Promise.all([this.accounts.user(owner.uid), this.accounts.group(owner.gid)])
        owner.uname = user?.name ?? ''
        owner.gname = group?.name ?? ''
      }),
    )
  }

  owner(uid: number, gid: number): Owner {
    const key = `${uid}:${gid}`
    let owner = this.owners.get(key)
    if (!owner) {
      this.owners.set(key, (owner = {gid, gname: '', uid, uname: ''}))
      // Started now, awaited (and any failure reported) by name(): Accounts keeps the promises.
      for (const lookup of [this.accounts.user(uid), this.accounts.group(gid)]) lookup.catch(() => {})
    }

    return owner
  }
}

/** Who runs the restore (tests pass another). */
export interface Runner {
  egid: number
  euid: number
  /** supplementary groups */
  groups: number[]
}

export function currentRunner(): Runner {
  return {egid: process.getegid?.() ?? 0, euid: process.geteuid?.() ?? 0, groups: process.getgroups?.() ?? []}
}

const MAX_ID = 0xff_ff_ff_fe
const CHOWN_HINT = 'pass --chown USER or USER:GROUP, each a name or a number (e.g. --chown mo:mo or --chown 999:999)'

const numeric = (s: string) => (/^\d+$/.test(s) ? Number(s) : undefined)

/**
 * `--chown USER[:GROUP]` as ids: names or numbers; without GROUP (or with `USER:`), the user's
 * login group. A user or group this host does not know, or an owner a non-root runner cannot
 * give files to, is a usage error.
 */
export async function resolveChown(spec: string, options: {accounts?: Accounts; runner?: Runner} = {}): Promise<Ids> {
  const accounts = options.accounts ?? new Accounts()
  const runner = options.runner ?? currentRunner()
  const match = /^([^:]+)(?::([^:]*))?$/.exec(spec)
  if (!match) throw usageError(`--chown ${JSON.stringify(spec)} is not USER[:GROUP]`, CHOWN_HINT)
  const [, userSpec, groupSpec = ''] = match
  const user = await chownUser(accounts, userSpec)
  const gid = groupSpec === '' ? loginGroup(spec, userSpec, user.gid) : await chownGroup(accounts, groupSpec)
  const {uid} = user
  if (runner.euid !== 0 && (uid !== runner.euid || (gid !== runner.egid && !runner.groups.includes(gid)))) {
    throw usageError(
      `--chown ${spec}: only root can give the restored files to another owner (running as uid ${runner.euid})`,
      'run the restore as root, or leave --chown out: the files are then yours',
    )
  }

  return {gid, uid}
}

/** A user by name, or by number (which needs no account); its login group when it has an account. */
async function chownUser(accounts: Accounts, spec: string): Promise<{gid?: number; uid: number}> {
  const id = numeric(spec)
  const user = await accounts.user(id ?? spec)
  if (user) return {gid: user.gid, uid: user.id}
  if (id === undefined || id > MAX_ID)
    throw usageError(`--chown: no user ${spec} on this host`, `${CHOWN_HINT}; \`getent passwd\` lists the users`)
  return {uid: id}
}

function loginGroup(spec: string, userSpec: string, gid: number | undefined): number {
  if (gid === undefined || !Number.isInteger(gid)) {
    throw usageError(
      `--chown ${spec}: uid ${userSpec} has no account here, so no login group`,
      `name the group: --chown ${userSpec}:GROUP`,
    )
  }

  return gid
}

async function chownGroup(accounts: Accounts, spec: string): Promise<number> {
  const id = numeric(spec)
  const group = await accounts.group(id ?? spec)
  if (group) return group.id
  if (id === undefined || id > MAX_ID)
    throw usageError(`--chown: no group ${spec} on this host`, `${CHOWN_HINT}; \`getent group\` lists the groups`)
  return id
}

/**
 * What the restore does with each entry's owner, decided as the one metadata pass meets the
 * entries (tree-writer.ts applyTreeMetadata): `ids` gives the ids to chown an entry to (undefined:
 * leave it as created, the restoring user's), looking each recorded name up once, the first time
 * it is met (a promise then, a plain value after); `finish`, after the last entry, says once what
 * could not be given back as recorded.
 */
export interface OwnerPlan {
  finish(): Promise<void>
  ids(owner?: Owner): Ids | Promise<Ids | undefined> | undefined
}

export interface PlanOwnersOptions {
  accounts?: Accounts
  breather?: Breather
  /** --chown, resolved: every entry gets these */
  chown?: Ids
  onWarning?: (message: string) => void
  runner?: Runner
}

/** A recorded id and the name it had on the backup host, keyed `<id>\0<name>`. */
type Recorded = Map<string, {id: number; name: string}>

const recordedKey = (id: number, name: string) => `${id}\0${name}`

/**
 * How owners are given back here. As root: by name, else number (one warning, at `finish`, lists
 * the names this host lacks). As another user: not at all (one warning at `finish` when the
 * backup had owners other than that user). With `chown`: that owner for everything.
 */
export function ownerPlan(options: PlanOwnersOptions = {}): OwnerPlan {
  const {chown} = options
  if (chown) return {async finish() {}, ids: () => chown}

  const accounts = options.accounts ?? new Accounts()
  const runner = options.runner ?? currentRunner()
  const users = new IdsHere('user', (name) => accounts.user(name))
  const groups = new IdsHere('group', (name) => accounts.group(name))
  const asRoot = runner.euid === 0
  return {
    async finish() {
      if (asRoot) {
        const missing = [...users.missing, ...groups.missing]
        if (missing.length > 0) {
          options.onWarning?.(
            `${missing.join(', ')} of the backup ${missing.length === 1 ? 'does' : 'do'} not exist on this host: their files get the recorded ids; pass --chown USER[:GROUP] to give them to a local account`,
          )
        }

        return
      }

      const [uids, gids] = await Promise.all([users.all(), groups.all()])
      const others = [
        ...uids.filter(([here]) => here !== runner.euid).map(([, u]) => describe('uid', u)),
        ...gids.filter(([here]) => here !== runner.egid).map(([, g]) => describe('gid', g)),
      ]
      if (others.length > 0) {
        const listed = others.slice(0, 4).join(', ') + (others.length > 4 ? ` and ${others.length - 4} more` : '')
        options.onWarning?.(
          `not running as root: the restored files belong to uid ${runner.euid} (gid ${runner.egid}), not to their owners in the backup (${listed}); restore as root to give them back, or pass --chown`,
        )
      }
    },
    ids(owner?: Owner) {
      if (!owner) return
      if (!asRoot) {
        // Changes nothing; what it would have changed is told at the end.
        users.note(owner.uid, owner.uname)
        groups.note(owner.gid, owner.gname)
        return
      }

      const uid = users.here(owner.uid, owner.uname)
      const gid = groups.here(owner.gid, owner.gname)
      if (typeof uid === 'number' && typeof gid === 'number') return {gid, uid}
      return Promise.all([uid, gid]).then(([u, g]) => ({gid: g, uid: u}))
    },
  }
}

/**
 * Recorded ids as this host has them: the id of the recorded name when the name exists here, the
 * recorded id otherwise; each (id, name) looked up once.
 */
class IdsHere {
  readonly missing: string[] = []
  private readonly pending = new Map<string, Promise<number>>()
  private readonly recorded: Recorded = new Map()
  private readonly resolved = new Map<string, number>()

  constructor(
    private readonly what: string,
    private readonly find: (name: string) => Promise<Account | undefined>,
  ) {}

  /** Every (id here, recorded) met so far. */
  async all(): Promise<Array<[number, {id: number; name: string}]>> {
    return Promise.all(
      [...this.recorded.values()].map(async (r): Promise<[number, {id: number; name: string}]> => [
        await this.here(r.id, r.name),
        r,
      ]),
    )
  }

  here(id: number, name: string): number | Promise<number> {
    const key = recordedKey(id, name)
    const done = this.resolved.get(key)
    if (done !== undefined) return done
    let pending = this.pending.get(key)
    if (!pending) {
      this.recorded.set(key, {id, name})
      pending = this.lookup(id, name).then((here) => {
        this.resolved.set(key, here)
        return here
      })
      this.pending.set(key, pending)
    }

    return pending
  }

  note(id: number, name: string): void {
    const key = recordedKey(id, name)
    if (!this.recorded.has(key)) this.recorded.set(key, {id, name})
  }

  private async lookup(id: number, name: string): Promise<number> {
    if (name === '') return id
    const here = await this.find(name)
    if (!here) this.missing.push(`${this.what} ${name} (${id})`)
    return here?.id ?? id
  }
}

function describe(what: 'gid' | 'uid', {id, name}: {id: number; name: string}): string {
  if (name === '') return `${what} ${id}`
  return what === 'uid' ? `${name} (uid ${id})` : `group ${name} (gid ${id})`
}
