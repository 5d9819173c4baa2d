/**
 * One notebook's chat: its kernel link and its folded state. The sidebar shows the active notebook's;
 * the others stay linked, so a turn that finishes while its notebook is in the background is still
 * recorded in it.
 */
import type { ISessionContext } from '@jupyterlab/apputils';
import { Signal } from '@lumino/signaling';
import { ChatState } from './state';
import { KernelLink, LinkState } from './connection';
import type { FromKernel, SessionRow, Status, ToKernel } from './protocol';
import { TURN_MIME } from './protocol';

/** What a chat needs of its notebook (a NotebookPanel in the app; a fake in tests). */
export interface NotebookHost {
  readonly path: string;
  readonly sessionContext: ISessionContext;
  /** Add a finished sidebar turn to the notebook as a `%%agent` cell carrying the output bundle. */
  insertTurnCell(source: string, bundle: Record<string, unknown>): void;
  /** The notebook's cells that carry turn records (for the `metadata.nbagent` index). */
  turnCells(): unknown[];
  setMetadata(key: string, value: unknown): void;
}

export type Change =
  | { kind: 'blocks'; structural: boolean }
  | { kind: 'status' }
  | { kind: 'link' }
  | { kind: 'sessions' };

export class NotebookChat {
  readonly changed = new Signal<this, Change>(this);
  readonly state = new ChatState();
  readonly link: KernelLink;
  status: Status | null = null;
  sessions: { current: string | null; rows: SessionRow[] } | null = null;
  private wasConnected = false;

  constructor(readonly host: NotebookHost) {
    this.link = new KernelLink(() => host.path);
    this.link.message.connect((_, msg) => this.onMessage(msg));
    this.link.stateChanged.connect((_, state) => this.onLink(state));
    this.link.bind(host.sessionContext);
  }

  get busy(): boolean {
    return this.state.running || Boolean(this.status?.busy);
  }

  send(data: ToKernel): boolean {
    const ok = this.link.send(data);
    if (!ok) {
      this.state.addNotice('Not connected to nbagent in this kernel.', 'error');
      this.changed.emit({ kind: 'blocks', structural: true });
    }
    return ok;
  }

  reply(requestId: string, reply: 'once' | 'always' | 'reject', feedback: string): void {
    if (this.send({ type: 'reply', request_id: requestId, reply, feedback })) {
      this.state.markSent(requestId);
      this.changed.emit({ kind: 'blocks', structural: false });
    }
  }

  dispose(): void {
    this.link.dispose();
    Signal.clearData(this);
  }

  private onLink(state: LinkState): void {
    if (state !== 'connected' && this.wasConnected) {
      // the kernel side is gone (restart, unload) or being re-linked: its session comes back with
      // the next `history`, if there is one
      this.state.reset(null);
      this.status = null;
      this.sessions = null;
    }
    this.wasConnected = state === 'connected';
    this.changed.emit({ kind: 'link' });
  }

  private onMessage(msg: FromKernel): void {
    switch (msg.type) {
      case 'hello':
        return; // linked: the status and the history follow
      case 'status':
        this.status = msg;
        this.state.footer.model = this.state.footer.model || msg.model;
        if (!msg.busy && this.state.footer.running) {
          this.state.footer.running = false;
        }
        this.changed.emit({ kind: 'status' });
        return;
      case 'history':
        this.state.loadHistory(msg.session_id, msg.events);
        if (this.status?.model) {
          this.state.footer.model = this.status.model;
        }
        this.changed.emit({ kind: 'blocks', structural: true });
        return;
      case 'event': {
        const before = this.state.blocks.length;
        const changed = this.state.apply(msg.event);
        const structural = this.state.blocks.length !== before || msg.event.type === 'permission_asked';
        if (changed.length || structural || msg.event.type === 'usage' || msg.event.type === 'turn_finished') {
          this.changed.emit({ kind: 'blocks', structural });
        }
        return;
      }
      case 'record':
        this.host.insertTurnCell(msg.source, msg.bundle);
        this.send({ type: 'sync_metadata', cells: this.host.turnCells() });
        return;
      case 'metadata':
        this.host.setMetadata('nbagent', msg.metadata);
        return;
      case 'command_result':
        this.state.addCommand(msg.line, msg.text);
        this.changed.emit({ kind: 'blocks', structural: true });
        return;
      case 'sessions':
        this.sessions = { current: msg.current, rows: msg.sessions };
        this.changed.emit({ kind: 'sessions' });
        return;
      case 'notice':
        this.state.addNotice(msg.message);
        this.changed.emit({ kind: 'blocks', structural: true });
        return;
      case 'error':
        this.state.addNotice(msg.message, 'error', msg.hint ?? '');
        this.changed.emit({ kind: 'blocks', structural: true });
        return;
    }
  }
}

/** The cells of a notebook (nbformat JSON) that carry turn records, reduced to what the index needs. */
export function turnCellsOf(cells: any[]): unknown[] {
  const out: unknown[] = [];
  for (const cell of cells) {
    if (!cell || cell.cell_type !== 'code') {
      continue;
    }
    const outputs = (cell.outputs ?? []).filter(
      (o: any) => o && typeof o.data === 'object' && o.data !== null && TURN_MIME in o.data
    );
    if (!outputs.length) {
      continue;
    }
    out.push({
      cell_type: 'code',
      id: cell.id,
      source: Array.isArray(cell.source) ? cell.source.join('') : cell.source,
      outputs: outputs.map((o: any) => ({ output_type: o.output_type, data: { [TURN_MIME]: o.data[TURN_MIME] } }))
    });
  }
  return out;
}
