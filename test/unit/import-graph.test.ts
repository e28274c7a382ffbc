/**
 * The layers of src/ point one way (DESIGN.md "Layout of the code"): the import graph, read from
 * the real sources with TypeScript's own import scanner (type-only imports included: they couple
 * modules too), has no cycle, and backup/ and restore/ are siblings over repo/ and archive/ that
 * never import each other; repo/ imports neither of them.
 */
import {readdir, readFile} from 'node:fs/promises'
import {dirname, join, relative, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import ts from 'typescript'
import {describe, expect, it} from 'vitest'

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src')

async function sources(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, {withFileTypes: true})) {
    const path = join(dir, entry.name)

    if (entry.isDirectory()) out.push(...(await sources(path)))
    else if (entry.name.endsWith('.ts')) out.push(path)
  }

  return out
}

/** Each module of src/ (relative path, .ts) → the modules of src/ it imports. */
async function importGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>()
  for (const file of await sources(SRC)) {
    const text = await readFile(file, 'utf8')
    const {importedFiles} = ts.preProcessFile(text, true, true)
    const local = importedFiles
      .map((i) => i.fileName)
      .filter((name) => name.startsWith('.'))
      .map((name) => relative(SRC, resolve(dirname(file), name)).replace(/\.js$/, '.ts'))
    graph.set(relative(SRC, file), [...new Set(local)].sort())
  }

  return graph
}

/** Every cycle's path, found by depth-first search (one path per back edge). */
function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = []
  const state = new Map<string, 'done' | 'open'>()
  const stack: string[] = []
  const visit = (node: string) => {
    state.set(node, 'open')
    stack.push(node)
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') found.push([...stack.slice(stack.indexOf(next)), next])
      else if (!state.has(next)) visit(next)
    }

    stack.pop()
    state.set(node, 'done')
  }

  for (const node of [...graph.keys()].sort()) if (!state.has(node)) visit(node)
  return found
}

describe('the import graph of src/', () => {
  it('reads the real sources, and every local import names a module that exists', async () => {
    const graph = await importGraph()
    expect(graph.size).toBeGreaterThan(50)
    expect(graph.get('lib/restore/restore.ts')).toContain('lib/repo/catalog.ts')
    const missing = [...graph].flatMap(([from, tos]) =>
      tos.filter((to) => !graph.has(to)).map((to) => `${from} → ${to}`),
    )
    expect(missing).toEqual([])
  })

  it('has no cycle', async () => {
    expect(cycles(await importGraph()).map((c) => c.join(' → '))).toEqual([])
  })

  it('finds a cycle when there is one (the check itself can fail)', () => {
    const graph = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts']],
    ])
    expect(cycles(graph)).toEqual([['a.ts', 'b.ts', 'c.ts', 'a.ts']])
  })

  it('keeps backup/ and restore/ apart, and repo/ below both', async () => {
    const crossing = [...(await importGraph())].flatMap(([from, tos]) =>
      tos
        .filter(
          (to) =>
            (from.startsWith('lib/backup/') && to.startsWith('lib/restore/')) ||
            (from.startsWith('lib/restore/') && to.startsWith('lib/backup/')) ||
            (from.startsWith('lib/repo/') && (to.startsWith('lib/backup/') || to.startsWith('lib/restore/'))),
        )
        .map((to) => `${from} → ${to}`),
    )
    expect(crossing).toEqual([])
  })
})
