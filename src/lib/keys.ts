/**
 * age identity files, written as age-keygen writes them (comment lines, then the key), with mode
 * 0600 and never over an existing file: losing a key loses every backup made for it.
 */
import {open} from 'node:fs/promises'
import {resolve} from 'node:path'

import {generateIdentity} from './archive/age.js'
import {usageError} from './errors.js'

export async function generateKeyFile(file: string): Promise<{identityFile: string; recipient: string}> {
  const path = resolve(file)
  const {identity, recipient} = await generateIdentity()
  let handle
  try {
    handle = await open(path, 'wx', 0o600)
  } catch (error) {
    const {code} = error as NodeJS.ErrnoException
    if (code === 'EEXIST')
      throw usageError(
        `${path} already exists: refusing to overwrite a key`,
        'choose another --output, or move the old key away first',
      )
    if (code === 'ENOENT')
      throw usageError(`cannot write ${path}: its directory does not exist`, 'create the directory first')
    throw error
  }

  try {
    await handle.writeFile(`# created: ${new Date().toISOString()}\n# public key: ${recipient}\n${identity}\n`)
    await handle.sync()
  } finally {
    await handle.close()
  }

  return {identityFile: path, recipient}
}
