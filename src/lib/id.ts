/** Backup ids are UUIDv7: unique without coordination, and they sort by time. */
import {v7} from 'uuid'

export const newBackupId = (): string => v7()
