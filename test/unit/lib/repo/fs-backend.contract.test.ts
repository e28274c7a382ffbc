/**
 * The filesystem backend passes the backend contract (test/contract/backend.ts), on real files in
 * a temp directory; hostile objects are made with the real mkfifo(1) and mkdir, and a save is
 * blocked by a plain file where its folder goes.
 */
import {execFile} from 'node:child_process'
import {mkdir, writeFile} from 'node:fs/promises'
import {dirname, join} from 'node:path'
import {promisify} from 'node:util'

import {FsBackend} from '../../../../src/lib/repo/fs.js'
import {backendContract} from '../../../contract/backend.js'
import {tempDir} from '../../../helpers/cli.js'

backendContract(
  'local directory',
  async () => {
    const tmp = await tempDir()
    const location = join(tmp.path, 'repo')
    return {backend: new FsBackend(location), cleanup: tmp.cleanup, location}
  },
  {
    hostile: {
      async blockSave(location, key) {
        await mkdir(dirname(dirname(join(location, key))), {recursive: true})
        await writeFile(dirname(join(location, key)), 'a file where the folder goes')
      },
      async directory(location, key) {
        await mkdir(join(location, key), {recursive: true})
      },
      async fifo(location, key) {
        await mkdir(dirname(join(location, key)), {recursive: true})
        await promisify(execFile)('mkfifo', [join(location, key)])
      },
    },
  },
)
