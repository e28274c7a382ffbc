import {describe, expect, it} from 'vitest'

import {BrError} from '../../../src/lib/errors.js'
import {lazyModule} from '../../../src/lib/lazy.js'

describe('lazyModule', () => {
  it('imports on the first call only, and hands every caller the same module', async () => {
    let imports = 0
    const load = lazyModule('counter', async () => {
      imports++
      return {value: 42}
    })
    expect(imports).toBe(0)
    const [a, b] = await Promise.all([load(), load()])
    expect(await load()).toBe(a)
    expect(b).toBe(a)
    expect(imports).toBe(1)
  })

  it('turns a module that cannot be loaded into one error naming it and the fix, and tries again next time', async () => {
    let attempts = 0
    const load = lazyModule('no-such-package', async () => {
      attempts++
      const missing = 'no-such-package-moctl-br' // a package that is not installed, on purpose
      return import(missing)
    })
    const error = await load().catch((error_: unknown) => error_)
    expect(error).toBeInstanceOf(BrError)
    expect((error as BrError).message).toMatch(/^cannot load no-such-package: .*no-such-package-moctl-br/)
    expect((error as BrError).suggestions).toEqual(['reinstall moctl br (npm ci), which installs its dependencies'])
    await expect(load()).rejects.toBeInstanceOf(BrError)
    expect(attempts).toBe(2)
  })
})
