#!/usr/bin/env node
// Prints a run's closing line, 'vitest: N passed, N failed[, N skipped]', from vitest's JSON
// report (the path given, by default .tmp/vitest.json): a plain line any CI log reader understands.
import {readFileSync} from 'node:fs'

const path = process.argv[2] ?? '.tmp/vitest.json'
const report = JSON.parse(readFileSync(path, 'utf8'))
const skipped = report.numPendingTests + report.numTodoTests
console.log(
  `vitest (${path}): ${report.numPassedTests} passed, ${report.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ''}`,
)
