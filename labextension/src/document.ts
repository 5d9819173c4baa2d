/**
 * The live document in JupyterLab and Notebook 7: `DocModel` (src/docops.ts) over a notebook's model,
 * and the handler of the comm target "nbagent.notebook" on the document's kernel connection: the
 * agent in the kernel reads, edits and fills the outputs of the cells of the notebook open here.
 */
import type { ICodeCellModel, ICellModel } from '@jupyterlab/cells';
import type { DocumentRegistry } from '@jupyterlab/docregistry';
import type { INotebookModel } from '@jupyterlab/notebook';
import type { ISessionContext } from '@jupyterlab/apputils';
import type { Kernel, KernelMessage } from '@jupyterlab/services';
import { DOC_TARGET, DocCell, DocModel, DocumentEndpoint, Frontend, Json, JsonObject, randomClientId } from './docops';

export { DOC_TARGET, Frontend };

class LabCell implements DocCell {
  constructor(readonly model: ICellModel) {}

  get id(): string {
    return this.model.id;
  }

  get cellType(): string {
    return this.model.type;
  }

  toJSON(): JsonObject {
    return JSON.parse(JSON.stringify(this.model.toJSON())) as JsonObject;
  }

  getSource(): string {
    return this.model.sharedModel.getSource();
  }

  setSource(source: string): void {
    this.model.sharedModel.setSource(source);
  }

  setMetadata(key: string, value: Json): void {
    this.model.setMetadata(key, value);
  }

  deleteMetadata(key: string): void {
    this.model.deleteMetadata(key);
  }

  private get code(): ICodeCellModel {
    return this.model as ICodeCellModel;
  }

  startRun(): void {
    const model = this.code;
    // as CodeCell.execute does: clear without an undo step, then running (every view shows [*])
    model.sharedModel.transact(() => model.clearExecution(), false, 'silent-change');
    model.executionState = 'running';
  }

  endRun(executionCount: number | null): void {
    const model = this.code;
    model.executionCount = executionCount;
    model.executionState = 'idle'; // the prompt shows the count (or nothing), never a stale [*]
  }

  addOutput(output: JsonObject): void {
    this.code.outputs.add(output as any);
  }

  clearOutputs(): void {
    this.code.outputs.clear();
  }
}

/** `DocModel` over a JupyterLab notebook document. */
export class NotebookDocument implements DocModel {
  private wrappers = new WeakMap<ICellModel, LabCell>();

  constructor(private context: DocumentRegistry.IContext<INotebookModel>) {}

  get path(): string {
    return this.context.path;
  }

  get dirty(): boolean {
    return this.context.model.dirty;
  }

  problem(op: string): string | null {
    if (!this.context.isReady) {
      return `${this.context.path} is still loading in the front-end; try again`;
    }
    if (op !== 'cells' && this.context.model.readOnly) {
      return `${this.context.path} is read-only in the front-end: it cannot be changed`;
    }
    return null;
  }


  private wrap(model: ICellModel): LabCell {
    let cell = this.wrappers.get(model);
    if (!cell) {
      cell = new LabCell(model);
      this.wrappers.set(model, cell);
    }
    return cell;
  }

  cells(): readonly DocCell[] {
    const list = this.context.model.cells;
    const out: LabCell[] = [];
    for (let i = 0; i < list.length; i++) {
      out.push(this.wrap(list.get(i)));
    }
    return out;
  }

  insertCell(index: number, cell: JsonObject): string {
    // (inside a transaction the cell models follow only at its end: so the id, not the cell)
    return this.context.model.sharedModel.insertCell(index, cell as any).getId();
  }

  deleteCell(index: number): void {
    this.context.model.sharedModel.deleteCell(index);
  }

  transact(f: () => void): void {
    const shared = this.context.model.sharedModel as unknown as UndoableNotebook;
    if (!shared.disableDocumentWideUndoRedo || !shared.ydoc) {
      shared.transact(f); // one notebook-wide undo manager, which tracks the notebook's transactions
      return;
    }
    // Per-cell undo (JupyterLab's default): each cell's undo manager tracks only the cell's own
    // transactions, so a change made in a notebook transaction would not be undone by the cell editor's
    // Ctrl+Z. This transaction's origin is tracked by every cell's manager while it runs (a manager
    // records only changes to its own cell), so Ctrl+Z in the changed cell reverts the agent's edit.
    const origin = { nbagent: 'document' };
    const managers = shared.cells.map(c => c.undoManager).filter((m): m is TrackingUndoManager => !!m);
    managers.forEach(m => m.addTrackedOrigin(origin));
    try {
      shared.ydoc.transact(f, origin);
    } finally {
      managers.forEach(m => m.removeTrackedOrigin(origin));
    }
  }
}

/** What `transact` needs of @jupyter/ydoc's YNotebook and Yjs's UndoManager (not in the public types). */
interface TrackingUndoManager {
  addTrackedOrigin(origin: unknown): void;
  removeTrackedOrigin(origin: unknown): void;
}

interface UndoableNotebook {
  readonly disableDocumentWideUndoRedo?: boolean;
  readonly ydoc?: { transact(f: () => void, origin: unknown): void };
  readonly cells: readonly { readonly undoManager?: TrackingUndoManager | null }[];
  transact(f: () => void): void;
}

/**
 * One per notebook document (shared by its views, as the kernel connection is): registers the comm
 * target on the document's kernel connection, again when the kernel changes (a restart keeps the
 * connection and its targets; its comms close, and the kernel opens a new one).
 */
export class DocumentCommHandler {
  readonly endpoint: DocumentEndpoint;
  private kernel: Kernel.IKernelConnection | null = null;
  private comms = new Set<Kernel.IComm>();
  private disposed = false;

  constructor(
    private context: DocumentRegistry.IContext<INotebookModel>,
    frontend: Frontend,
    client: string = randomClientId()
  ) {
    this.endpoint = new DocumentEndpoint(new NotebookDocument(context), client, frontend);
    const session = context.sessionContext;
    session.kernelChanged.connect(this.onKernelChanged, this);
    session.statusChanged.connect(this.onStatus, this);
    this.watch(session.session?.kernel ?? null);
    context.disposed.connect(() => this.dispose());
  }

  get client(): string {
    return this.endpoint.client;
  }

  private onKernelChanged(_: ISessionContext, change: { newValue: Kernel.IKernelConnection | null }): void {
    this.watch(change.newValue);
  }

  private onStatus(_: ISessionContext, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
      this.endpoint.abandonRuns();
    }
  }

  private watch(kernel: Kernel.IKernelConnection | null): void {
    if (kernel === this.kernel || this.disposed) {
      return;
    }
    this.unregister();
    this.kernel = kernel;
    kernel?.registerCommTarget(DOC_TARGET, this.onOpen);
  }

  private unregister(): void {
    this.endpoint.abandonRuns();
    for (const comm of this.comms) {
      if (!comm.isDisposed) {
        comm.dispose();
      }
    }
    this.comms.clear();
    if (this.kernel && !this.kernel.isDisposed) {
      this.kernel.removeCommTarget(DOC_TARGET, this.onOpen);
    }
    this.kernel = null;
  }

  private onOpen = (comm: Kernel.IComm, msg: KernelMessage.ICommOpenMsg): void => {
    const ready = this.endpoint.hello(msg.content.data);
    if (!ready) {
      comm.close({ error: `nbagent.notebook: expected a hello, got ${JSON.stringify(msg.content.data)}` });
      return;
    }
    this.comms.add(comm);
    comm.onClose = () => {
      this.comms.delete(comm);
      this.endpoint.abandonRuns();
    };
    comm.onMsg = (message: KernelMessage.ICommMsgMsg) => {
      const reply = this.endpoint.handle(message.content.data);
      if (reply && !comm.isDisposed) {
        comm.send(reply as any);
      }
    };
    comm.send(ready as any);
  };

  dispose(): void {
    if (this.disposed) {
      return;
    }
    this.endpoint.running.clear(); // the document is gone with its model
    this.unregister();
    this.disposed = true;
    this.context.sessionContext.kernelChanged.disconnect(this.onKernelChanged, this);
    this.context.sessionContext.statusChanged.disconnect(this.onStatus, this);
  }
}
