/**
 * nbagent's JupyterLab extension: a sidebar chat with the agent of the active notebook's kernel
 * (JupyterLab), and the live document the agent edits (comm target "nbagent.notebook") with the
 * provenance marker on the cells it wrote (JupyterLab and Notebook 7).
 */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Contents } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { NotebookChat, NotebookHost, turnCellsOf } from './chat';
import { DocumentCommHandler, Frontend } from './document';
import { ProvenanceMarker } from './marker';
import { ChatPanel, FileAccess } from './panel';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16">
<path class="jp-icon3" fill="#616161" d="M4 4h16a2 2 0 0 1 2 2v9a2 2 0 0 1-2 2h-7l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm3 5v2h2V9H7zm4 0v2h2V9h-2zm4 0v2h2V9h-2z"/>
</svg>`;

export const nbagentIcon = new LabIcon({ name: 'nbagent:chat', svgstr: ICON_SVG });
const OPEN_COMMAND = 'nbagent:open-sidebar';

function dirname(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

function join(...parts: string[]): string {
  return parts.filter(Boolean).join('/').replace(/\/+/g, '/');
}

class PanelHost implements NotebookHost {
  constructor(private panel: NotebookPanel) {}

  get path(): string {
    return this.panel.context.path;
  }

  get sessionContext() {
    return this.panel.sessionContext;
  }

  insertTurnCell(source: string, bundle: Record<string, unknown>): void {
    const model = this.panel.content.model;
    if (!model) {
      return;
    }
    const shared = model.sharedModel;
    shared.insertCell(shared.cells.length, {
      cell_type: 'code',
      source,
      metadata: { nbagent: { origin: 'sidebar' } },
      outputs: [{ output_type: 'display_data', data: bundle as any, metadata: {} }],
      execution_count: null
    } as any);
  }

  turnCells(): unknown[] {
    const model = this.panel.content.model;
    return model ? turnCellsOf(model.sharedModel.cells.map(c => c.toJSON())) : [];
  }

  setMetadata(key: string, value: unknown): void {
    this.panel.content.model?.setMetadata(key, value as any);
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbagent:sidebar',
  description: "A sidebar chat with nbagent, the coding agent in the active notebook's kernel.",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILabShell, IRenderMimeRegistry, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    shell: ILabShell | null,
    rendermime: IRenderMimeRegistry | null,
    palette: ICommandPalette | null
  ) => {
    if (!shell) {
      return; // Notebook 7: no lab shell, no sidebar (the document plugin below still runs)
    }
    const contents = app.serviceManager.contents;
    const chats = new Map<NotebookPanel, NotebookChat>();
    const folder = () => dirname(tracker.currentWidget?.context.path ?? '');
    const files: FileAccess = {
      async list(sub: string) {
        const model = await contents.get(join(folder(), sub), { content: true });
        return ((model.content ?? []) as Contents.IModel[]).map(m => ({ name: m.name, type: m.type }));
      },
      async read(path: string) {
        const model = await contents.get(join(folder(), path), { content: true, format: 'text' });
        if (model.type === 'directory') {
          throw new Error('a folder');
        }
        return typeof model.content === 'string' ? model.content : null;
      }
    };
    const panel = new ChatPanel(rendermime, files);
    panel.title.icon = nbagentIcon;
    shell.add(panel, 'right', { rank: 600 });

    const chatFor = (nb: NotebookPanel | null): NotebookChat | null => {
      if (!nb) {
        return null;
      }
      let chat = chats.get(nb);
      if (!chat) {
        chat = new NotebookChat(new PanelHost(nb));
        chats.set(nb, chat);
        nb.disposed.connect(() => {
          const gone = chats.get(nb);
          chats.delete(nb);
          if (panel.current === gone) {
            panel.showChat(chatFor(tracker.currentWidget));
          }
          gone?.dispose();
        });
      }
      return chat;
    };
    const follow = () => {
      // a chat (and its kernel comm) exists only for notebooks the sidebar was shown with
      if (panel.isVisible || chats.size) {
        panel.showChat(chatFor(tracker.currentWidget));
      }
    };
    tracker.currentChanged.connect(follow);
    shell.currentChanged.connect(follow);
    panel.onShow = follow;
    void app.restored.then(follow);

    app.commands.addCommand(OPEN_COMMAND, {
      label: 'nbagent: Open the chat sidebar',
      icon: nbagentIcon,
      execute: () => {
        shell.activateById(panel.id);
        panel.showChat(chatFor(tracker.currentWidget));
      }
    });
    palette?.addItem({ command: OPEN_COMMAND, category: 'nbagent' });
  }
};

/** The live document and the provenance marker, in JupyterLab 4 and Notebook 7. */
const documentPlugin: JupyterFrontEndPlugin<void> = {
  id: 'nbagent:document',
  description: 'Lets nbagent in the kernel read and edit the open notebook; marks the cells it wrote.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILabShell],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, labShell: ILabShell | null) => {
    const frontend: Frontend = !labShell || app.name === 'Jupyter Notebook' ? 'notebook7' : 'jupyterlab';
    // one handler per document (its views share the kernel connection, which holds one callback
    // per target), one marker per view
    const handlers = new Map<NotebookPanel['context'], DocumentCommHandler>();
    const attach = (panel: NotebookPanel) => {
      const context = panel.context;
      if (!handlers.has(context)) {
        handlers.set(context, new DocumentCommHandler(context, frontend));
        context.disposed.connect(() => handlers.delete(context));
      }
      new ProvenanceMarker(panel);
    };
    tracker.forEach(attach);
    tracker.widgetAdded.connect((_, panel) => attach(panel));
  }
};

export default [plugin, documentPlugin];
