/**
 * verify and restore in process, as their commands run them (the flows), of a local repository
 * and with no service to stop: restore swaps only once `isRunning` says nothing answers SQL, and
 * here nothing does. Each rejects as the command would fail (a BrError).
 */
import type {DecryptOptions} from '../../src/lib/archive/types.js'
import type {TrustPolicy} from '../../src/lib/repo/authenticity.js'

import {localRepo} from '../../src/lib/repo/address.js'
import {newRestoreContext, restoreFlow} from '../../src/lib/restore/restore.js'
import {newVerifyContext, verifyFlow} from '../../src/lib/restore/verify.js'
import {runFlow} from '../../src/lib/steps.js'

/** The reader: its keys, whom it trusts, and where its warnings go. */
export interface Reader {
  decrypt: DecryptOptions
  onWarning?: (message: string) => void
  trust: TrustPolicy
}

/** `br verify <id>` (every file, not --quick) of the repository at `repo`. */
export async function verifyInProcess(repo: string, id: string, reader: Reader): Promise<void> {
  const {decrypt, onWarning, trust} = reader
  await runFlow(verifyFlow(), newVerifyContext({decrypt, id, onWarning, quick: false, repo: localRepo(repo), trust}))
}

/** `br restore <id> --data-dir <dataDir> --service none` (no --force) from the repository at `repo`. */
export async function restoreInProcess(repo: string, id: string, dataDir: string, reader: Reader): Promise<void> {
  const {decrypt, onWarning, trust} = reader
  await runFlow(
    restoreFlow(),
    newRestoreContext({
      dataDir,
      decrypt,
      discardOld: false,
      force: false,
      id,
      isRunning: async () => false,
      onWarning,
      repo: localRepo(repo),
      service: null,
      trust,
    }),
  )
}
