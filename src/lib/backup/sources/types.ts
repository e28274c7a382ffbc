/**
 * Where a backup's files come from (DESIGN.md "Where the files come from: sources": all end in
 * the same packer; only where the files come from differs). A source is a few steps of the one backup
 * flow: from the opened repository and the base, they make the files ready and say where they
 * are and which to pack (a Packing), and, after the pack, what must follow it (cold: start the
 * service again). The flow packs, publishes and rolls back the same way for every source.
 *
 * Guarantees of every source: it only reads the data directory; what it makes beside it (a
 * clone, MO's folder) is named in the trail as soon as it may exist, so the rollback removes it
 * (release) whatever failed; a stopped service is recorded in the trail (restart) until it runs.
 */
import type {Script} from '../../steps.js'
import type {BackupTrail, Opened, Packed, Taken} from '../types.js'

export interface Source {
  /** steps once the archive is written, before the record is published */
  afterPack(script: Script<BackupTrail, Packed>): Script<BackupTrail, Packed>
  /** what the record says was left out (an online backup packs all of MO's folder) */
  readonly excluded: string[]
  /** the data dir itself is read (cold, clone): it is locked, and names a backup cannot keep are refused before any stop */
  readonly readsDataDir: boolean
  /** the steps from the checked data dir and its base to the files to pack */
  take(script: Script<BackupTrail, Opened>): Script<BackupTrail, Taken>
}

/** The step titles every source shows, so a scan reads the same whether it is of MO's folder or the data dir. */
export const SCAN = 'Scan data directory'
export const PLAN = 'Plan the incremental'
