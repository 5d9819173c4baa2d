/**
 * The provenance marker: cells the agent inserted or changed (their metadata has `nbagent.action`)
 * get the CSS class `nbagent-agent-cell` (a left rule and a small "nbagent" badge, style/index.css)
 * and a title saying which action and turn. Follows cells added, removed, retyped and metadata edits.
 */
import type { ICellModel } from '@jupyterlab/cells';
import type { NotebookPanel } from '@jupyterlab/notebook';

export const MARKER_CLASS = 'nbagent-agent-cell';

const ACTIONS: Record<string, string> = {
  insert: 'inserted',
  replace: 'changed'
};

/** The marker's title for a cell's `nbagent` metadata, or null when it is not an agent cell. */
export function markerTitle(nbagent: unknown): string | null {
  if (typeof nbagent !== 'object' || nbagent === null || Array.isArray(nbagent)) {
    return null;
  }
  const meta = nbagent as Record<string, unknown>;
  const action = meta.action;
  if (typeof action !== 'string' || !action) {
    return null;
  }
  const parts = [`nbagent: ${ACTIONS[action] ?? action} by the agent`];
  if (typeof meta.turn === 'string' && meta.turn) {
    parts.push(`turn ${meta.turn}`);
  }
  if (typeof meta.call === 'string' && meta.call) {
    parts.push(`call ${meta.call}`);
  }
  return parts.join(', ');
}

/** Put (or take off) the marker on a cell node. */
export function applyMarker(node: HTMLElement, nbagent: unknown): void {
  const title = markerTitle(nbagent);
  node.classList.toggle(MARKER_CLASS, title !== null);
  if (title !== null) {
    node.title = title;
    node.dataset.nbagentAction = String((nbagent as Record<string, unknown>).action);
  } else if (node.dataset.nbagentAction !== undefined) {
    node.removeAttribute('title');
    delete node.dataset.nbagentAction;
  }
}

/** Keeps the markers of one notebook panel up to date; ends with the panel. */
export class ProvenanceMarker {
  private watched = new WeakSet<ICellModel>();
  private pending = false;

  constructor(private panel: NotebookPanel) {
    panel.content.modelChanged.connect(this.onModelChanged, this);
    this.onModelChanged();
  }

  private onModelChanged(): void {
    const model = this.panel.content.model;
    if (model) {
      model.cells.changed.disconnect(this.schedule, this);
      model.cells.changed.connect(this.schedule, this);
    }
    this.schedule();
  }

  /** Refresh after the notebook made its cell widgets for the change. */
  private schedule(): void {
    if (this.pending) {
      return;
    }
    this.pending = true;
    setTimeout(() => {
      this.pending = false;
      this.refresh();
    }, 0);
  }

  refresh(): void {
    if (this.panel.isDisposed) {
      return;
    }
    for (const cell of this.panel.content.widgets) {
      const model = cell.model;
      if (!this.watched.has(model)) {
        this.watched.add(model);
        model.metadataChanged.connect(this.onMetadata, this);
      }
      applyMarker(cell.node, model.getMetadata('nbagent'));
    }
  }

  private onMetadata(model: ICellModel): void {
    if (this.panel.isDisposed) {
      model.metadataChanged.disconnect(this.onMetadata, this);
      return;
    }
    for (const cell of this.panel.content.widgets) {
      if (cell.model === model) {
        applyMarker(cell.node, model.getMetadata('nbagent'));
      }
    }
  }
}
