/**
 * The owner plan for a whole manifest, every owner looked up and `finish` already told: the
 * answers of src/lib/archive/owners.ts `ownerPlan` before anything is touched, for the tests of
 * its rules (restore itself asks entry by entry, as it writes).
 */
import type {Manifest} from '../../../../src/lib/archive/types.js'

import {type OwnerPlan, ownerPlan, type PlanOwnersOptions} from '../../../../src/lib/archive/owners.js'

export async function planOwners(
  manifest: Pick<Manifest, 'entries' | 'root'>,
  options: PlanOwnersOptions = {},
): Promise<OwnerPlan> {
  const plan = ownerPlan(options)
  await plan.ids(manifest.root?.owner)
  for (const e of manifest.entries) {
    await options.breather?.breathe()
    const ids = plan.ids(e.owner)

    if (ids instanceof Promise) await ids
  }

  await plan.finish()
  return {async finish() {}, ids: plan.ids}
}
