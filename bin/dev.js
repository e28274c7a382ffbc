#!/usr/bin/env -S node --import tsx
// `moctl` from src/, no build needed: oclif's development mode maps dist/ to src/ and loads it
// through tsx (a devDependency). For trying a change by hand; the tests run bin/run.js on dist/.
import {execute} from '@oclif/core'

await execute({development: true, dir: import.meta.url})
