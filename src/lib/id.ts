/** Backup ids are UUIDv7: unique without coordination, and they sort by time. */
import {v7, validate, version} from 'uuid'

export const newBackupId = (): string => v7()

/** When backup `id` was made (a UUIDv7's first 48 bits are Unix milliseconds), or null when it is no UUIDv7. */
export function idTime(id: string): Date | null {
  if (!validate(id) || version(id) !== 7) return null
  return new Date(Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16))
}
