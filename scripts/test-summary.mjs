#!/usr/bin/env node
// Prints the suite's closing line, 'vitest: N passed, N failed[, N skipped]', from vitest's JSON
// report (.tmp/vitest.json): a plain line any CI log reader understands.
import {readFileSync} from 'node:fs'

const report = JSON.parse(readFileSync(new URL('../.tmp/vitest.json', import.meta.url), 'utf8'))
const skipped = report.numPendingTests + report.numTodoTests
console.log(
  `vitest: ${report.numPassedTests} passed, ${report.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ''}`,
)
