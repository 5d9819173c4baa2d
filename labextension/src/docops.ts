/**
 * The live-document protocol (comm target "nbagent.notebook", opened by the kernel; see
 * notes/doc-protocol.md) over a small `DocModel` interface: no Jupyter in here, so it is tested on an
 * in-memory fake (test/document.test.ts). src/document.ts is `DocModel` over a JupyterLab notebook.
 */
export const DOC_TARGET = 'nbagent.notebook';
export const DOC_PROTOCOL = 1;
/** The extension's version (kept equal to package.json's by a unit test). */
export const VERSION = '0.1.0';

export type Frontend = 'jupyterlab' | 'notebook7';
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };
const CELL_TYPES = ['code', 'markdown', 'raw'];

/** One cell of the live document. */
export interface DocCell {
  readonly id: string;
  readonly cellType: string;
  /** nbformat v4.5 JSON of the cell as it is now. */
  toJSON(): JsonObject;
  getSource(): string;
  setSource(source: string): void;
  setMetadata(key: string, value: Json): void;
  deleteMetadata(key: string): void;
  /** Code cells: clear outputs and execution count, show as running. */
  startRun(): void;
  /** Code cells: set the execution count, no longer running. */
  endRun(executionCount: number | null): void;
  /** Code cells: append one nbformat output (consecutive streams of one name merge). */
  addOutput(output: JsonObject): void;
  /** Code cells: remove the outputs (IPython's clear_output while the cell runs). */
  clearOutputs(): void;
}

/** The live document as the protocol needs it. */
export interface DocModel {
  readonly path: string;
  readonly dirty: boolean;
  /** Why the document cannot serve this op now (still loading, read-only), or null. */
  problem(op: string): string | null;
  cells(): readonly DocCell[];
  /** Insert a cell (the JSON's `id` kept) at `index`; the id it got. */
  insertCell(index: number, cell: JsonObject): string;
  deleteCell(index: number): void;
  /** Run several changes as one step (one undo step, one sync message). */
  transact(f: () => void): void;
}

export type Reply =
  | { type: 'reply'; id: string; ok: true; result: JsonObject }
  | { type: 'reply'; id: string; ok: false; error: string };

export interface Ready {
  type: 'ready';
  client: string;
  frontend: Frontend;
  path: string;
  version: string;
}

class OpError extends Error {}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A source as nbformat allows it (a string or a list of lines) -> one string. */
export function sourceText(source: unknown, what: string): string {
  if (typeof source === 'string') {
    return source;
  }
  if (Array.isArray(source) && source.every(s => typeof s === 'string')) {
    return source.join('');
  }
  throw new OpError(`${what}: "source" must be a string or a list of strings`);
}

/** A cell's JSON as the protocol sends it: the source joined to one string. */
export function cellJSON(cell: DocCell): JsonObject {
  const json = cell.toJSON();
  if (Array.isArray(json.source)) {
    json.source = (json.source as string[]).join('');
  }
  return json;
}

function describeIds(doc: DocModel): string {
  const ids = doc.cells().map(c => c.id);
  if (!ids.length) {
    return 'the notebook has no cells';
  }
  const shown = ids.length > 50 ? [...ids.slice(0, 50), `... (${ids.length} cells)`] : ids;
  return `the notebook's cell ids: ${shown.join(', ')}`;
}

function findCell(doc: DocModel, cellId: unknown): [DocCell, number] {
  if (typeof cellId !== 'string' || !cellId) {
    throw new OpError('"cell_id" must be a cell id (a non-empty string)');
  }
  const index = doc.cells().findIndex(c => c.id === cellId);
  if (index < 0) {
    throw new OpError(`no cell with id "${cellId}" in ${doc.path} (it was deleted?); ${describeIds(doc)}`);
  }
  return [doc.cells()[index], index];
}

function codeCell(doc: DocModel, cellId: unknown): DocCell {
  const [cell] = findCell(doc, cellId);
  if (cell.cellType !== 'code') {
    throw new OpError(`cell "${cell.id}" is a ${cell.cellType} cell, not a code cell`);
  }
  return cell;
}

function checkType(value: unknown): string {
  if (typeof value !== 'string' || !CELL_TYPES.includes(value)) {
    throw new OpError(`"cell_type" must be one of ${CELL_TYPES.join(', ')}, not ${JSON.stringify(value)}`);
  }
  return value;
}

/** Metadata updates: each key set to its value, a null value deletes the key. */
function applyMetadata(target: JsonObject, updates: JsonObject): JsonObject {
  const merged: JsonObject = { ...target };
  for (const [key, value] of Object.entries(updates)) {
    if (value === null) {
      delete merged[key];
    } else {
      merged[key] = value;
    }
  }
  return merged;
}

function checkMetadata(value: unknown): JsonObject | null {
  if (value === undefined) {
    return null;
  }
  if (!isObject(value)) {
    throw new OpError('"metadata" must be an object (key -> value, null deletes the key)');
  }
  return value;
}

function opCells(doc: DocModel): JsonObject {
  return { path: doc.path, dirty: doc.dirty, cells: doc.cells().map(cellJSON) };
}

function opInsert(doc: DocModel, args: JsonObject): JsonObject {
  const cell = args.cell;
  if (!isObject(cell)) {
    throw new OpError('"cell" must be a cell as nbformat JSON (an object)');
  }
  const type = checkType(cell.cell_type);
  const json: JsonObject = {
    cell_type: type,
    source: sourceText(cell.source ?? '', 'cell'),
    metadata: isObject(cell.metadata) ? cell.metadata : {}
  };
  if (cell.id !== undefined && cell.id !== null) {
    if (typeof cell.id !== 'string' || !cell.id) {
      throw new OpError('"cell.id" must be a non-empty string');
    }
    if (doc.cells().some(c => c.id === cell.id)) {
      throw new OpError(`a cell with id "${cell.id}" already exists in ${doc.path}`);
    }
    json.id = cell.id;
  }
  if (type === 'code') {
    json.outputs = Array.isArray(cell.outputs) ? cell.outputs : [];
    json.execution_count = typeof cell.execution_count === 'number' ? cell.execution_count : null;
  } else if (isObject(cell.attachments)) {
    json.attachments = cell.attachments;
  }
  const count = doc.cells().length;
  let index: number;
  const after = args.after;
  const found = typeof after === 'string' ? doc.cells().findIndex(c => c.id === after) : -1;
  if (after === null) {
    index = 0;
  } else if (found >= 0) {
    index = found + 1;
  } else {
    // `after` is gone (or not given): the index the kernel saw, clamped
    const wanted = typeof args.index === 'number' && Number.isFinite(args.index) ? Math.floor(args.index) : count;
    index = Math.max(0, Math.min(count, wanted));
  }
  const cellId = doc.insertCell(index, json);
  const at = doc.cells().findIndex(c => c.id === cellId);
  return { cell_id: cellId, index: at >= 0 ? at : index };
}

function opReplace(doc: DocModel, args: JsonObject): JsonObject {
  const [cell, index] = findCell(doc, args.cell_id);
  const cellId = cell.id; // (the cell object does not outlive a change of type)
  const source = args.source === undefined || args.source === null ? null : sourceText(args.source, 'replace');
  const type = args.cell_type === undefined || args.cell_type === null ? null : checkType(args.cell_type);
  const metadata = checkMetadata(args.metadata);
  if (type !== null && type !== cell.cellType) {
    // a new type: the cell is made again, with its id, source and metadata (as changeCellType does)
    const raw = cell.toJSON();
    const meta = applyMetadata(isObject(raw.metadata) ? raw.metadata : {}, metadata ?? {});
    if (type === 'code') {
      meta.trusted = true; // no outputs, so nothing untrusted
    } else {
      delete meta.trusted;
    }
    const json: JsonObject = {
      id: cellId,
      cell_type: type,
      source: source ?? sourceText(raw.source ?? '', 'cell'),
      metadata: meta
    };
    if (type === 'code') {
      json.outputs = [];
      json.execution_count = null;
    } else if (isObject(raw.attachments)) {
      json.attachments = raw.attachments;
    }
    doc.transact(() => {
      doc.deleteCell(index);
      doc.insertCell(index, json);
    });
    return { cell_id: cellId, index };
  }
  doc.transact(() => {
    if (source !== null && source !== cell.getSource()) {
      cell.setSource(source);
    }
    for (const [key, value] of Object.entries(metadata ?? {})) {
      if (value === null) {
        cell.deleteMetadata(key);
      } else {
        cell.setMetadata(key, value);
      }
    }
  });
  return { cell_id: cellId, index };
}

function opDelete(doc: DocModel, args: JsonObject): JsonObject {
  const [cell, index] = findCell(doc, args.cell_id);
  const json = cellJSON(cell);
  doc.deleteCell(index);
  return { cell: json, index };
}

function opRunStart(doc: DocModel, args: JsonObject): JsonObject {
  codeCell(doc, args.cell_id).startRun();
  return {};
}

function opRunEnd(doc: DocModel, args: JsonObject): JsonObject {
  const count = args.execution_count;
  if (count !== null && count !== undefined && (typeof count !== 'number' || !Number.isInteger(count))) {
    throw new OpError('"execution_count" must be an integer or null');
  }
  codeCell(doc, args.cell_id).endRun(typeof count === 'number' ? count : null);
  return {};
}

const OPS: Record<string, (doc: DocModel, args: JsonObject) => JsonObject> = {
  cells: opCells,
  insert: opInsert,
  replace: opReplace,
  delete: opDelete,
  run_start: opRunStart,
  run_end: opRunEnd
};

/** Answer one request (always a reply: errors as ok false). */
export function handleRequest(doc: DocModel, request: JsonObject): Reply {
  const id = typeof request.id === 'string' ? request.id : String(request.id ?? '');
  try {
    const op = request.op;
    const run = typeof op === 'string' && Object.prototype.hasOwnProperty.call(OPS, op) ? OPS[op] : null;
    if (!run) {
      throw new OpError(`unknown op ${JSON.stringify(op)} (known: ${Object.keys(OPS).join(', ')})`);
    }
    const problem = doc.problem(op as string);
    if (problem) {
      throw new OpError(problem);
    }
    return { type: 'reply', id, ok: true, result: run(doc, request) };
  } catch (e) {
    const message = e instanceof OpError ? e.message : `${request.op} failed in the front-end: ${String(e)}`;
    return { type: 'reply', id, ok: false, error: message };
  }
}

/** Append a streamed output to its cell; an error message when it cannot. */
export function applyOutput(doc: DocModel, message: JsonObject): string | null {
  try {
    const output = message.output;
    if (!isObject(output) || typeof output.output_type !== 'string') {
      throw new OpError('"output" must be one nbformat output (with an output_type)');
    }
    const cell = codeCell(doc, message.cell_id);
    if (output.output_type === 'clear') {
      cell.clearOutputs(); // not an nbformat output: the code called clear_output()
    } else {
      cell.addOutput(output);
    }
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

export function randomClientId(): string {
  const bytes = new Uint8Array(8);
  globalThis.crypto.getRandomValues(bytes);
  return 'nbc-' + Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('');
}

/** The protocol for one front-end instance of one document (no Jupyter in it). */
export class DocumentEndpoint {
  /** Cells shown as running (run_start without its run_end yet). */
  readonly running = new Set<string>();

  constructor(
    private doc: DocModel,
    readonly client: string,
    readonly frontend: Frontend,
    readonly version: string = VERSION
  ) {}

  /** The answer to a comm's opening data: `ready` for a `hello`, else null. */
  hello(data: unknown): Ready | null {
    if (!isObject(data) || data.type !== 'hello') {
      return null;
    }
    const { client, frontend, version } = this;
    return { type: 'ready', client, frontend, path: this.doc.path, version };
  }

  /** Handle one comm message: the reply to send (requests to this client), or null. */
  handle(data: unknown): Reply | null {
    if (!isObject(data) || data.to !== this.client) {
      return null; // not ours: another front-end (tab) on the same kernel answers it
    }
    if (data.type === 'request') {
      const reply = handleRequest(this.doc, data);
      if (reply.ok && typeof data.cell_id === 'string') {
        if (data.op === 'run_start') {
          this.running.add(data.cell_id);
        } else if (data.op === 'run_end') {
          this.running.delete(data.cell_id);
        }
      }
      return reply;
    }
    if (data.type === 'output') {
      const problem = applyOutput(this.doc, data);
      if (problem) {
        console.warn(`nbagent: an output for cell ${String(data.cell_id)} was dropped: ${problem}`);
      }
    }
    return null;
  }

  /**
   * The kernel will not end its runs (the link closed, the kernel restarted or died): cells shown as
   * running stop being so (their outputs so far are kept), so no prompt is left at [*].
   */
  abandonRuns(): void {
    for (const id of this.running) {
      const cell = this.doc.cells().find(c => c.id === id);
      if (cell && cell.cellType === 'code') {
        cell.endRun(null);
      }
    }
    this.running.clear();
  }
}
