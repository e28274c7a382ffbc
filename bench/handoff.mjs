#!/usr/bin/env node
// What it costs to hand decompressed bytes to another thread. verify and restore decompress on a
// worker thread, and the main thread (tar) and the file worker (SHA-256) read what it wrote; the
// worker then decompresses the next frames into the same buffers (loan.ts). This bench does the
// same with nothing else around it, and beside it the alternative: the decompressing thread
// hashes its own output. It also times a first touch of new memory against a second one.
//
//   node bench/handoff.mjs [--size=512MiB] [--rounds=3] [--outputs=6]
//   (Linux: per-thread CPU from /proc)
//
// Data: the project's MO-like data dir (scripts/make-mo-data.mjs, in a temp dir), its files one
// after another cut into pieces of 2 MiB (as the archive's frames), each compressed at level 3
// with zstd-napi into an independent frame. Modes:
// - alone: the worker decompresses each frame; the main thread gives the buffer straight back;
// - main hashes: the main thread hashes each output before giving it back (verify's handoff);
// - main copies: the main thread copies each output once (the copy into the file sink's batch);
// - worker hashes: the worker hashes each frame itself, after decompressing it.
// The output buffers rotate as loan.ts rotates them: the one given back longest ago is filled next
// (until 2026-12-03 this bench took the one given back last, which the pipeline never does, and
// so measured a dearer handoff). --outputs: how many rotate (6: about a one-thread decompressor's
// frames in flight and spare, zstd-parallel.ts); 4 are at the worker at once whatever the count.
// Each figure is the median of --rounds, modes interleaved; CPU seconds are per thread.
import {mkdtempSync, readdirSync, readFileSync, rmSync} from 'node:fs'
import {createRequire} from 'node:module'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {Worker} from 'node:worker_threads'

import {createMoData} from '../scripts/make-mo-data.mjs'
import {argValue, median, parseSize} from './measure.mjs'

if (process.platform !== 'linux') {
  console.error('bench/handoff.mjs reads per-thread CPU time from /proc: Linux only')
  process.exit(2)
}

const argv = process.argv.slice(2)
const bytes = parseSize(argValue(argv, 'size', '512MiB'))
const rounds = Number(argValue(argv, 'rounds', '3'))
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error(`bench: --rounds=${argValue(argv, 'rounds', '')} is not a count of rounds: pass --rounds=3`)
  process.exit(2)
}

const PIECE = 2 * 1024 * 1024
/** Output buffers in rotation: by default about as many as a decompressor's frames in flight and spare (zstd-parallel.ts). */
const OUTPUTS = Number(argValue(argv, 'outputs', '6'))
/** Frames at the worker at once, whatever the rotation: a spare buffer waits for its turn. */
const IN_FLIGHT = 4
if (!Number.isInteger(OUTPUTS) || OUTPUTS < IN_FLIGHT) {
  console.error(
    `bench: --outputs=${argValue(argv, 'outputs', '')} is not a count of buffers: pass --outputs=6 (4 or more)`,
  )
  process.exit(2)
}

const require = createRequire(import.meta.url)
const bindingPath = require.resolve('zstd-napi/binding')
const binding = require(bindingPath)

/** CPU seconds of the calling thread (utime + stime, in clock ticks of 10 ms). */
const threadCpu = () => {
  const stat = readFileSync('/proc/thread-self/stat', 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

const WORKER = `
const {parentPort, workerData} = require('node:worker_threads')
const {createHash} = require('node:crypto')
const {readFileSync} = require('node:fs')
const binding = require(workerData.bindingPath)
const dctx = new binding.DCtx()
const threadCpu = ${threadCpu.toString()}
let started
parentPort.on('message', ({frame, length, output, size, hash, end}) => {
  if (end) return parentPort.postMessage({cpu: threadCpu() - started})
  started ??= threadCpu()
  const out = Buffer.from(output, 0, size)
  dctx.decompress(out, Buffer.from(frame, 0, length))
  if (hash) createHash('sha256').update(out).digest()
  parentPort.postMessage({frame, output}, [frame, output])
})`

/** Frames of PIECE bytes of an MO-like data dir's files, each in an ArrayBuffer of its own. */
function makeFrames() {
  const dir = mkdtempSync(join(tmpdir(), 'moctl-br-handoff-'))
  createMoData(dir, {size: bytes})
  const files = readdirSync(dir, {recursive: true, withFileTypes: true}).filter((e) => e.isFile())
  const all = Buffer.concat(files.map((e) => readFileSync(join(e.parentPath ?? e.path, e.name))))
  rmSync(dir, {force: true, recursive: true})
  const cctx = new binding.CCtx()
  cctx.setParameter(binding.CParameter.compressionLevel, 3)
  const scratch = Buffer.allocUnsafe(binding.compressBound(PIECE))
  const frames = []
  for (let at = 0; at + PIECE <= all.length; at += PIECE) {
    const n = cctx.compress2(scratch, all.subarray(at, at + PIECE))
    const frame = new ArrayBuffer(binding.compressBound(PIECE))
    new Uint8Array(frame).set(scratch.subarray(0, n))
    frames.push({frame, length: n})
  }

  return frames
}

/** One pass over every frame in `mode`: the CPU seconds of the worker and of the main thread. */
async function pass(frames, mode) {
  const {createHash} = await import('node:crypto')
  const worker = new Worker(WORKER, {eval: true, workerData: {bindingPath}})
  const outputs = Array.from({length: OUTPUTS}, () => new ArrayBuffer(PIECE))
  const batch = Buffer.allocUnsafe(PIECE)
  // Every buffer written once before the clock starts: no first touch in the figures.
  for (const o of outputs) new Uint8Array(o).fill(1)
  batch.fill(1)
  const mainStart = threadCpu()
  let next = 0
  let done = 0
  await new Promise((resolve) => {
    const send = () => {
      if (next >= frames.length) return
      const {frame, length} = frames[next]
      const job = {frame, hash: mode === 'worker hashes', length, output: outputs.shift(), size: PIECE}
      worker.postMessage({...job, seq: next++}, [frame, job.output])
    }

    worker.on('message', ({frame, output}) => {
      if (!output) return
      frames[done].frame = frame
      const out = Buffer.from(output, 0, PIECE)
      if (mode === 'main hashes') createHash('sha256').update(out).digest()
      if (mode === 'main copies') out.copy(batch)
      outputs.push(output)
      if (++done === frames.length) resolve()
      else send()
    })
    for (let i = 0; i < IN_FLIGHT; i++) send()
  })
  const main = threadCpu() - mainStart
  const reply = new Promise((resolve) => {
    worker.on('message', (m) => {
      if (m.cpu !== undefined) resolve(m.cpu)
    })
  })
  worker.postMessage({end: true})
  const cpu = await reply
  await worker.terminate()
  return {main, worker: cpu}
}

/** Microseconds per 4 KiB page: the first write to new memory, and a second write to it. */
function firstTouch() {
  const size = 256 * 1024 * 1024
  const buffer = Buffer.allocUnsafeSlow(size)
  const time = () => {
    const t = process.hrtime.bigint()
    for (let i = 0; i < size; i += 4096) buffer[i] = 1
    return Number(process.hrtime.bigint() - t) / 1000 / (size / 4096)
  }

  const first = time()
  return {again: time(), first}
}

const frames = makeFrames()
const modes = ['alone', 'main hashes', 'main copies', 'worker hashes']
const runs = Object.fromEntries(modes.map((m) => [m, []]))
for (let r = 0; r < rounds; r++) {
  for (const mode of modes) {
    runs[mode].push(await pass(frames, mode))
  }
}

const mib = (frames.length * PIECE) / 2 ** 20
console.log(
  `${mib} MiB in ${frames.length} frames of 2 MiB, ${OUTPUTS} output buffers; node ${process.version}; median of ${rounds} rounds`,
)
console.log('| mode | decompressing thread CPU s | main thread CPU s | together |')
console.log('|---|---|---|---|')
for (const mode of modes) {
  const w = median(runs[mode].map((r) => r.worker))
  const m = median(runs[mode].map((r) => r.main))
  console.log(`| ${mode} | ${w.toFixed(2)} | ${m.toFixed(2)} | ${(w + m).toFixed(2)} |`)
}

const touch = firstTouch()
console.log(
  `a write to a new 4 KiB page: ${touch.first.toFixed(2)} µs; to one written before: ${touch.again.toFixed(2)} µs`,
)
