import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  DocCell,
  DocModel,
  DocumentEndpoint,
  Json,
  JsonObject,
  Reply,
  VERSION,
  handleRequest,
  randomClientId
} from '../src/docops';
import { MARKER_CLASS, applyMarker, markerTitle } from '../src/marker';

/** An in-memory notebook: nbformat JSON cells, one undo entry per transaction. */
class FakeCell implements DocCell {
  running = false;
  constructor(public json: JsonObject) {}
  get id(): string {
    return this.json.id as string;
  }
  get cellType(): string {
    return this.json.cell_type as string;
  }
  toJSON(): JsonObject {
    return JSON.parse(JSON.stringify(this.json));
  }
  getSource(): string {
    const s = this.json.source;
    return Array.isArray(s) ? s.join('') : (s as string);
  }
  setSource(source: string): void {
    this.json.source = source;
  }
  private get meta(): JsonObject {
    return this.json.metadata as JsonObject;
  }
  setMetadata(key: string, value: Json): void {
    this.meta[key] = value;
  }
  deleteMetadata(key: string): void {
    delete this.meta[key];
  }
  startRun(): void {
    this.json.outputs = [];
    this.json.execution_count = null;
    this.running = true;
  }
  endRun(n: number | null): void {
    this.json.execution_count = n;
    this.running = false;
  }
  clearOutputs(): void {
    this.json.outputs = [];
  }
  addOutput(output: JsonObject): void {
    const outputs = this.json.outputs as JsonObject[];
    const last = outputs[outputs.length - 1];
    if (last && last.output_type === 'stream' && output.output_type === 'stream' && last.name === output.name) {
      last.text = (last.text as string) + (output.text as string);
    } else {
      outputs.push(output);
    }
  }
}

class FakeDoc implements DocModel {
  path = 'work/analysis.ipynb';
  dirty = false;
  problemText: string | null = null;
  problem(op: string): string | null {
    return op === 'cells' ? null : this.problemText;
  }
  list: FakeCell[];
  transactions = 0;
  private next = 0;
  constructor(cells: JsonObject[]) {
    this.list = cells.map(c => new FakeCell(JSON.parse(JSON.stringify(c))));
  }
  cells(): readonly DocCell[] {
    return this.list;
  }
  insertCell(index: number, cell: JsonObject): string {
    const json = JSON.parse(JSON.stringify(cell));
    json.id = json.id ?? `gen${++this.next}`;
    this.list.splice(index, 0, new FakeCell(json));
    this.dirty = true;
    return json.id;
  }
  deleteCell(index: number): void {
    // as in JupyterLab, a deleted cell's object is dead (its id unreadable)
    this.list.splice(index, 1)[0].json = {};
    this.dirty = true;
  }
  transact(f: () => void): void {
    this.transactions++;
    f();
  }
  ids(): string[] {
    return this.list.map(c => c.id);
  }
  cell(id: string): FakeCell {
    return this.list.find(c => c.id === id)!;
  }
}

const code = (id: string, source: string | string[], extra: JsonObject = {}): JsonObject => ({
  id,
  cell_type: 'code',
  source,
  metadata: {},
  execution_count: null,
  outputs: [],
  ...extra
});
const md = (id: string, source: string): JsonObject => ({ id, cell_type: 'markdown', source, metadata: {} });

function notebook(): FakeDoc {
  return new FakeDoc([
    md('a', '# Title'),
    code('b', ['import pandas as pd\n', 'df = pd.read_csv("x.csv")'], {
      execution_count: 3,
      outputs: [{ output_type: 'stream', name: 'stdout', text: 'old\n' }],
      metadata: { tags: ['setup'], nbagent: { turn: 't0', action: 'insert', call: 'c0', note: 'kept' } }
    }),
    code('c', 'df.describe()')
  ]);
}

let seq = 0;
function request(doc: DocModel, op: string, args: JsonObject = {}): Reply {
  return handleRequest(doc, { type: 'request', id: `r${++seq}`, to: 'me', op, ...args });
}

function ok(reply: Reply): JsonObject {
  if (!reply.ok) {
    throw new Error(`expected ok, got error: ${reply.error}`);
  }
  return reply.result;
}

function error(reply: Reply): string {
  if (reply.ok) {
    throw new Error(`expected an error, got ${JSON.stringify(reply.result)}`);
  }
  return reply.error;
}

describe('op cells', () => {
  it('returns path, dirty and every cell as JSON with the source as one string', () => {
    const doc = notebook();
    doc.dirty = true;
    const result = ok(request(doc, 'cells'));
    expect(result.path).toBe('work/analysis.ipynb');
    expect(result.dirty).toBe(true);
    const cells = result.cells as JsonObject[];
    expect(cells.map(c => c.id)).toEqual(['a', 'b', 'c']);
    expect(cells[1].source).toBe('import pandas as pd\ndf = pd.read_csv("x.csv")');
    expect(cells[1].execution_count).toBe(3);
    expect(cells[1].outputs).toEqual([{ output_type: 'stream', name: 'stdout', text: 'old\n' }]);
  });
});

describe('op insert', () => {
  it('inserts after the given cell, keeping the id, and says where', () => {
    const doc = notebook();
    const result = ok(request(doc, 'insert', { after: 'a', index: 1, cell: code('new1', 'x = 1') }));
    expect(result).toEqual({ cell_id: 'new1', index: 1 });
    expect(doc.ids()).toEqual(['a', 'new1', 'b', 'c']);
    expect(doc.cell('new1').toJSON()).toMatchObject({ source: 'x = 1', outputs: [], execution_count: null });
  });

  it('inserts at the top when after is null', () => {
    const doc = notebook();
    expect(ok(request(doc, 'insert', { after: null, index: 2, cell: md('top', 'hi') }))).toEqual({
      cell_id: 'top',
      index: 0
    });
    expect(doc.ids()[0]).toBe('top');
  });

  it('falls back to the index (clamped) when the after cell is gone', () => {
    const doc = notebook();
    expect(ok(request(doc, 'insert', { after: 'gone', index: 2, cell: code('n', '') })).index).toBe(2);
    expect(doc.ids()).toEqual(['a', 'b', 'n', 'c']);
    expect(ok(request(doc, 'insert', { after: 'gone', index: 99, cell: code('m', '') })).index).toBe(4);
    expect(ok(request(doc, 'insert', { after: 'gone', index: -5, cell: code('k', '') })).index).toBe(0);
    expect(doc.ids()).toEqual(['k', 'a', 'b', 'n', 'c', 'm']);
  });

  it('joins a list source and refuses a duplicate id or a bad type', () => {
    const doc = notebook();
    ok(request(doc, 'insert', { after: 'c', index: 3, cell: code('j', ['a\n', 'b']) }));
    expect(doc.cell('j').getSource()).toBe('a\nb');
    expect(error(request(doc, 'insert', { after: 'c', index: 3, cell: code('b', 'dup') }))).toContain(
      'a cell with id "b" already exists'
    );
    const sql = { cell_type: 'sql', source: '' };
    expect(error(request(doc, 'insert', { after: 'c', index: 3, cell: sql }))).toContain('cell_type');
    expect(doc.ids()).toEqual(['a', 'b', 'c', 'j']);
  });
});

describe('op replace', () => {
  it('sets the source in place, keeps outputs, merges metadata (null deletes) in one step', () => {
    const doc = notebook();
    const before = doc.transactions;
    const result = ok(
      request(doc, 'replace', {
        cell_id: 'b',
        source: ['import polars as pl\n', 'df = pl.read_csv("x.csv")'],
        cell_type: null,
        metadata: { nbagent: { turn: 't1', action: 'replace', call: 'c9' }, tags: null }
      })
    );
    expect(result).toEqual({ cell_id: 'b', index: 1 });
    const cell = doc.cell('b').toJSON();
    expect(cell.source).toBe('import polars as pl\ndf = pl.read_csv("x.csv")');
    expect(cell.outputs).toEqual([{ output_type: 'stream', name: 'stdout', text: 'old\n' }]);
    expect(cell.execution_count).toBe(3);
    expect(cell.metadata).toEqual({ nbagent: { turn: 't1', action: 'replace', call: 'c9' } });
    expect(doc.transactions).toBe(before + 1);
  });

  it('leaves metadata alone when absent', () => {
    const doc = notebook();
    ok(request(doc, 'replace', { cell_id: 'b', source: 'y = 2' }));
    expect((doc.cell('b').toJSON().metadata as JsonObject).tags).toEqual(['setup']);
  });

  it('changes the type keeping id, position and metadata; a markdown cell has no outputs', () => {
    const doc = notebook();
    const result = ok(
      request(doc, 'replace', { cell_id: 'b', source: 'Notes', cell_type: 'markdown', metadata: { extra: 1 } })
    );
    expect(result).toEqual({ cell_id: 'b', index: 1 });
    expect(doc.ids()).toEqual(['a', 'b', 'c']);
    const cell = doc.cell('b').toJSON();
    expect(cell.cell_type).toBe('markdown');
    expect(cell.source).toBe('Notes');
    expect(cell.outputs).toBeUndefined();
    expect(cell.metadata).toMatchObject({ tags: ['setup'], extra: 1 });

    ok(request(doc, 'replace', { cell_id: 'a', source: 'print(1)', cell_type: 'code' }));
    expect(doc.cell('a').toJSON()).toMatchObject({ cell_type: 'code', outputs: [], execution_count: null });
  });

  it('keeps the source when the type changes without one', () => {
    const doc = notebook();
    ok(request(doc, 'replace', { cell_id: 'c', cell_type: 'raw' }));
    expect(doc.cell('c').toJSON()).toMatchObject({ cell_type: 'raw', source: 'df.describe()' });
  });
});

describe('op delete', () => {
  it('deletes the cell and returns it with its index', () => {
    const doc = notebook();
    const result = ok(request(doc, 'delete', { cell_id: 'b' }));
    expect(result.index).toBe(1);
    expect((result.cell as JsonObject).id).toBe('b');
    expect((result.cell as JsonObject).source).toBe('import pandas as pd\ndf = pd.read_csv("x.csv")');
    expect(doc.ids()).toEqual(['a', 'c']);
  });
});

describe('runs and outputs', () => {
  it('run_start clears, outputs append (streams merge), run_end sets the count', () => {
    const doc = notebook();
    const me = new DocumentEndpoint(doc, 'me', 'jupyterlab');
    expect(me.handle({ type: 'request', id: 'r', to: 'me', op: 'run_start', cell_id: 'b' })).toEqual({
      type: 'reply',
      id: 'r',
      ok: true,
      result: {}
    });
    const b = doc.cell('b');
    expect(b.running).toBe(true);
    expect(b.toJSON()).toMatchObject({ outputs: [], execution_count: null });
    const output = (o: JsonObject) => me.handle({ type: 'output', to: 'me', cell_id: 'b', output: o });
    output({ output_type: 'stream', name: 'stdout', text: 'progress' });
    output({ output_type: 'clear' }); // clear_output() in the running code
    expect(b.toJSON().outputs).toEqual([]);
    for (const text of ['1\n', '2\n']) {
      output({ output_type: 'stream', name: 'stdout', text });
    }
    output({ output_type: 'display_data', data: { 'text/plain': 'x' }, metadata: {} });
    const end = { type: 'request', id: 's', to: 'me', op: 'run_end', cell_id: 'b', execution_count: 4, status: 'ok' };
    expect(ok(me.handle(end)!)).toEqual({});
    expect(b.running).toBe(false);
    expect(b.toJSON()).toMatchObject({
      execution_count: 4,
      outputs: [
        { output_type: 'stream', name: 'stdout', text: '1\n2\n' },
        { output_type: 'display_data', data: { 'text/plain': 'x' }, metadata: {} }
      ]
    });
  });

  it('stops showing cells as running when the kernel will not end their runs', () => {
    const doc = notebook();
    const me = new DocumentEndpoint(doc, 'me', 'jupyterlab');
    const req = (id: string, op: string, cellId: string, extra: JsonObject = {}) =>
      me.handle({ type: 'request', id, to: 'me', op, cell_id: cellId, ...extra });
    req('1', 'run_start', 'b');
    req('2', 'run_start', 'c');
    req('3', 'run_end', 'c', { execution_count: 5, status: 'ok' });
    me.handle({ type: 'output', to: 'me', cell_id: 'b', output: { output_type: 'stream', name: 'stdout', text: 'so far' } });
    expect([doc.cell('b').running, doc.cell('c').running]).toEqual([true, false]);
    me.abandonRuns();
    expect(doc.cell('b').running).toBe(false);
    expect(doc.cell('b').toJSON()).toMatchObject({ execution_count: null, outputs: [{ text: 'so far' }] });
    expect(doc.cell('c').toJSON().execution_count).toBe(5);
    expect(me.running.size).toBe(0);
  });

  it('refuses to run a markdown cell', () => {
    expect(error(request(notebook(), 'run_start', { cell_id: 'a' }))).toContain('not a code cell');
  });
});

describe('errors and replies', () => {
  it('names the missing cell and the cells there are', () => {
    for (const op of ['replace', 'delete', 'run_start', 'run_end']) {
      const message = error(request(notebook(), op, { cell_id: 'zz', source: 'x' }));
      expect(message).toContain('"zz"');
      expect(message).toContain('a, b, c');
    }
  });

  it('always replies, with the request id, even to an unknown op or a broken document', () => {
    const doc = notebook();
    const unknown = handleRequest(doc, { type: 'request', id: 'q1', to: 'me', op: 'frobnicate' });
    expect(unknown).toMatchObject({ type: 'reply', id: 'q1', ok: false });
    expect(error(unknown)).toContain('unknown op');
    const broken: DocModel = {
      path: doc.path,
      dirty: false,
      problem: () => null,
      cells: () => doc.cells(),
      insertCell: () => {
        throw new Error('boom');
      },
      deleteCell: () => undefined,
      transact: f => f()
    };
    const insert = { type: 'request', id: 'q2', to: 'me', op: 'insert', after: null, index: 0, cell: md('x', '') };
    const reply = handleRequest(broken, insert);
    expect(reply).toMatchObject({ type: 'reply', id: 'q2', ok: false });
    expect(error(reply)).toContain('boom');
    doc.problemText = 'work/analysis.ipynb is read-only in the front-end';
    expect(error(request(doc, 'delete', { cell_id: 'a' }))).toContain('read-only');
    expect(doc.ids()).toEqual(['a', 'b', 'c']);
  });
});

describe('DocumentEndpoint', () => {
  it('answers hello with ready, and only requests addressed to it', () => {
    const doc = notebook();
    const me = new DocumentEndpoint(doc, 'me', 'notebook7', '9.9.9');
    expect(me.hello({ type: 'hello', protocol: 1 })).toEqual({
      type: 'ready',
      client: 'me',
      frontend: 'notebook7',
      path: 'work/analysis.ipynb',
      version: '9.9.9'
    });
    expect(me.hello({ type: 'other' })).toBeNull();
    expect(me.handle({ type: 'request', id: 'r', to: 'other-tab', op: 'delete', cell_id: 'a' })).toBeNull();
    expect(me.handle({ type: 'request', id: 'r', op: 'delete', cell_id: 'a' })).toBeNull();
    const stream = { output_type: 'stream', name: 'stdout', text: 'x' };
    expect(me.handle({ type: 'output', to: 'other-tab', cell_id: 'b', output: stream })).toBeNull();
    expect(doc.ids()).toEqual(['a', 'b', 'c']);
    expect(doc.cell('b').toJSON().outputs).toHaveLength(1);
  });

  it('makes distinct client ids', () => {
    const ids = new Set(Array.from({ length: 50 }, randomClientId));
    expect(ids.size).toBe(50);
  });

  it('reports the version of package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    expect(VERSION).toBe(pkg.version);
  });
});

describe('provenance marker', () => {
  it('titles agent cells only', () => {
    expect(markerTitle({ turn: 't1', action: 'insert', call: 'c1', other: 1 })).toBe(
      'nbagent: inserted by the agent, turn t1, call c1'
    );
    expect(markerTitle({ action: 'replace' })).toBe('nbagent: changed by the agent');
    expect(markerTitle({ origin: 'sidebar' })).toBeNull();
    expect(markerTitle(undefined)).toBeNull();
  });

  it('toggles the class and title on a node', () => {
    const classes = new Set<string>();
    const attrs: Record<string, string> = {};
    const node = {
      classList: { toggle: (c: string, on: boolean) => (on ? classes.add(c) : classes.delete(c)) },
      dataset: {} as Record<string, string>,
      set title(v: string) {
        attrs.title = v;
      },
      removeAttribute: (name: string) => delete attrs[name]
    } as unknown as HTMLElement;
    applyMarker(node, { action: 'insert', turn: 't2' });
    expect(classes.has(MARKER_CLASS)).toBe(true);
    expect(attrs.title).toBe('nbagent: inserted by the agent, turn t2');
    applyMarker(node, null);
    expect(classes.has(MARKER_CLASS)).toBe(false);
    expect(attrs.title).toBeUndefined();
  });
});
