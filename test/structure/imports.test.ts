/**
 * The import graph, read from the code: no cycles anywhere, and core's folders import in one
 * direction only (protocol ← util ← config ← clients ← store ← sessions ← flows ← routes ← server).
 * A new arrow against that order fails here, naming the file and the import.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

/** Lower layers first. A file may import its own layer or a lower one, never a higher one. */
const CORE_LAYERS = ['protocol', 'util', 'config', 'clients', 'store', 'sessions', 'flows', 'routes', 'server'];
/** Files and folders outside the layers, with the layer they sit at. */
const CORE_PLACES: Record<string, string> = {
  'version.ts': 'protocol',
  'socket-path.ts': 'protocol',
  'paths.ts': 'util',
  client: 'util', // the ProxyClient: protocol only
  'client-entry.ts': 'util',
  'index.ts': 'top',
  'server-entry.ts': 'top',
};

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sources(full));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') && !entry.name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

/** Relative imports of a file (static, dynamic and `import type`), resolved to .ts paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  const re = /(?:from\s+|import\s*\(\s*|import\s+)'(\.[^']+)'/g;
  for (const m of text.matchAll(re)) {
    const spec = m[1]!;
    out.push(path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')));
  }
  return out;
}

function graph(dir: string): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of sources(dir)) g.set(f, importsOf(f).filter((t) => t.startsWith(dir)));
  return g;
}

/** Every cycle's files (Tarjan's strongly connected components of size > 1, or a self-import). */
function cycles(g: Map<string, string[]>): string[][] {
  let index = 0;
  const stack: string[] = [];
  const on = new Set<string>();
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) {
        low.set(v, Math.min(low.get(v)!, idx.get(w)!));
      }
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (g.get(v) ?? []).includes(v)) found.push(comp.map((f) => path.relative(root, f)).sort());
    }
  };
  for (const v of g.keys()) if (!idx.has(v)) visit(v);
  return found;
}

function layerOf(srcDir: string, file: string): string {
  const rel = path.relative(srcDir, file);
  const first = rel.split(path.sep)[0]!;
  return CORE_PLACES[first] ?? first;
}

describe('import graph', () => {
  for (const pkg of ['core', 'cli', 'testkit']) {
    it(`packages/${pkg} has no import cycles`, () => {
      expect(cycles(graph(path.join(root, 'packages', pkg, 'src')))).toEqual([]);
    });
  }

  it("core's folders import in one direction: protocol ← util ← config ← clients ← store ← sessions ← flows ← routes ← server", () => {
    const srcDir = path.join(root, 'packages/core/src');
    const wrong: string[] = [];
    for (const [file, targets] of graph(srcDir)) {
      const from = layerOf(srcDir, file);
      if (from === 'top') continue;
      const fromRank = CORE_LAYERS.indexOf(from);
      expect(fromRank, `${path.relative(srcDir, file)} is in no known layer`).toBeGreaterThanOrEqual(0);
      for (const t of targets) {
        const to = layerOf(srcDir, t);
        const toRank = CORE_LAYERS.indexOf(to);
        if (to === 'top' || toRank > fromRank) wrong.push(`${path.relative(srcDir, file)} → ${path.relative(srcDir, t)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('the ProxyClient side imports the protocol only (it is bundled into the CLI)', () => {
    const srcDir = path.join(root, 'packages/core/src');
    const g = graph(srcDir);
    const seen = new Set<string>();
    const walk = (f: string): void => {
      if (seen.has(f)) return;
      seen.add(f);
      for (const t of g.get(f) ?? []) walk(t);
    };
    walk(path.join(srcDir, 'client-entry.ts'));
    const outside = [...seen].map((f) => path.relative(srcDir, f)).filter((f) => !/^(protocol|client|util)\/|^(client-entry|socket-path|version|paths)\.ts$/.test(f));
    expect(outside).toEqual([]);
  });

  it('cli imports core only by its package name', () => {
    const cliDir = path.join(root, 'packages/cli/src');
    const deep: string[] = [];
    for (const f of sources(cliDir)) {
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(/'((?:\.\.\/)+(?:core|packages)\/[^']*|@credproxy\/core\/(?!(?:client|server)')[^']*)'/g)) deep.push(`${path.relative(cliDir, f)}: ${m[1]}`);
    }
    expect(deep).toEqual([]);
  });
});
