/**
 * The sidebar widget: renders the active notebook's chat (blocks, footer, setup hints) and the
 * input box (Enter sends, Shift+Enter a newline, Up/Down history, `/` completion, `@file` mentions).
 */
import { Widget } from '@lumino/widgets';
import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { MimeModel } from '@jupyterlab/rendermime';
import type { IRenderMime } from '@jupyterlab/rendermime';
import { NotebookChat, Change } from './chat';
import {
  AttachedFile,
  Completion,
  InputHistory,
  STATIC_COMMANDS,
  applyCompletion,
  mentionAt,
  mentionCompletions,
  mentionFolder,
  parseMentions,
  slashCompletions,
  withAttachments
} from './completion';
import type { Block } from './state';
import { footerText } from './state';
import { CardHost, el, renderBlock } from './cards';
import { McpView } from './mcp_view';

export interface FileAccess {
  /** Entries of a folder relative to the notebook's folder ("" for the folder itself). */
  list(folder: string): Promise<{ name: string; type: string }[]>;
  /** A file's text (null when it is not text), relative to the notebook's folder. */
  read(path: string): Promise<string | null>;
}

const STREAM_INTERVAL_MS = 80;
const MODELS_KEY = 'nbagent:models';

export class ChatPanel extends Widget {
  private chat: NotebookChat | null = null;
  private readonly header: HTMLElement;
  private readonly notebookLabel: HTMLElement;
  private readonly modelInput: HTMLInputElement;
  private readonly modelList: HTMLDataListElement;
  private readonly sessionsBox: HTMLElement;
  private readonly setup: HTMLElement;
  private readonly log: HTMLElement;
  private readonly usage: HTMLElement;
  private readonly stopButton: HTMLButtonElement;
  private readonly input: HTMLTextAreaElement;
  private readonly sendButton: HTMLButtonElement;
  private readonly completionsBox: HTMLElement;
  private readonly mcp = new McpView();
  private readonly nodes = new Map<string, { node: HTMLElement; rev: number }>();
  private readonly renderers = new Map<string, { renderer: IRenderMime.IRenderer; busy: boolean; again: string | null }>();
  private readonly history = new InputHistory();
  private completions: Completion[] = [];
  private selected = 0;
  private timer: number | null = null;
  private completionRequest = 0;

  constructor(
    private rendermime: IRenderMimeRegistry | null,
    private files: FileAccess | null
  ) {
    super();
    this.id = 'nbagent-sidebar';
    this.addClass('nba-panel');
    this.title.caption = 'nbagent: chat with the agent in this notebook';

    this.header = el('div', 'nba-header');
    const title = el('span', 'nba-title', 'nbagent');
    this.notebookLabel = el('span', 'nba-notebook');
    this.modelInput = el('input', 'nba-model');
    this.modelInput.placeholder = 'model';
    this.modelInput.title = 'Model (provider/name): Enter to switch';
    this.modelInput.setAttribute('list', 'nba-models');
    this.modelList = el('datalist');
    this.modelList.id = 'nba-models';
    const sessionsButton = el('button', 'nba-button nba-sessions-button', 'Sessions');
    sessionsButton.title = "This notebook's sessions";
    const newButton = el('button', 'nba-button nba-new', 'New');
    newButton.title = 'Start a new session';
    this.header.append(title, this.notebookLabel, this.modelInput, this.modelList, sessionsButton, newButton);

    this.sessionsBox = el('div', 'nba-sessions');
    this.sessionsBox.hidden = true;
    this.setup = el('div', 'nba-setup');
    this.log = el('div', 'nba-log');

    const footer = el('div', 'nba-footer');
    this.usage = el('span', 'nba-usage');
    this.stopButton = el('button', 'nba-button nba-stop', 'Stop');
    this.stopButton.title = 'Stop the running turn';
    footer.append(this.usage, this.stopButton);

    const inputRow = el('div', 'nba-input');
    this.completionsBox = el('div', 'nba-completions');
    this.completionsBox.hidden = true;
    this.input = el('textarea', 'nba-prompt');
    this.input.rows = 3;
    this.input.placeholder = 'Ask nbagent… / for commands, @ to attach a file';
    this.input.title = 'Enter sends, Shift+Enter starts a new line, / lists the commands, @file attaches a file';
    this.sendButton = el('button', 'nba-button nba-send', 'Send');
    inputRow.append(this.completionsBox, this.input, this.sendButton);

    this.node.append(this.header, this.mcp.node, this.sessionsBox, this.setup, this.log, footer, inputRow);

    newButton.addEventListener('click', () => this.chat?.send({ type: 'new_session' }));
    sessionsButton.addEventListener('click', () => this.toggleSessions());
    this.stopButton.addEventListener('click', () => this.stop());
    this.sendButton.addEventListener('click', () => void this.submit());
    this.modelInput.addEventListener('keydown', e => {
      if (e.key === 'Enter') {
        e.preventDefault();
        this.setModel();
      }
    });
    this.modelInput.addEventListener('change', () => this.setModel());
    this.input.addEventListener('keydown', e => this.onKey(e));
    this.input.addEventListener('input', () => void this.updateCompletions());
    this.input.addEventListener('blur', () => setTimeout(() => this.hideCompletions(), 150));
    this.loadModels();
    this.render();
  }

  /** Show this notebook's chat (null: no notebook). */
  showChat(chat: NotebookChat | null): void {
    if (chat === this.chat) {
      return;
    }
    if (this.chat) {
      this.chat.changed.disconnect(this.onChange, this);
    }
    this.chat = chat;
    this.clearLog();
    this.sessionsBox.hidden = true;
    if (chat) {
      chat.changed.connect(this.onChange, this);
    }
    this.render();
  }

  /** Called each time the sidebar is shown (the app follows the active notebook from then on). */
  onShow: (() => void) | null = null;

  protected onAfterShow(): void {
    this.onShow?.();
    this.input.focus();
  }

  get current(): NotebookChat | null {
    return this.chat;
  }

  dispose(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
    }
    this.clearLog();
    super.dispose();
  }

  // -- updates ---------------------------------------------------------------------------

  private onChange(_: NotebookChat, change: Change): void {
    if (change.kind === 'blocks' && !change.structural) {
      this.schedule();
      return;
    }
    if (change.kind === 'sessions') {
      this.renderSessions();
      return;
    }
    this.render();
  }

  private schedule(): void {
    if (this.timer === null) {
      this.timer = window.setTimeout(() => {
        this.timer = null;
        this.render();
      }, STREAM_INTERVAL_MS);
    }
  }

  private render(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.renderSetup();
    this.renderHeader();
    this.mcp.update(this.chat?.link.connected ? this.chat.status?.mcp : null);
    this.renderBlocks();
    this.renderFooter();
  }

  private renderHeader(): void {
    const chat = this.chat;
    this.notebookLabel.textContent = chat ? chat.host.path.split('/').pop() ?? '' : '';
    this.notebookLabel.title = chat?.host.path ?? '';
    const model = chat?.status?.model ?? '';
    if (document.activeElement !== this.modelInput) {
      this.modelInput.value = model;
    }
    if (model) {
      this.rememberModel(model);
    }
    const usable = Boolean(chat?.link.connected);
    this.modelInput.disabled = !usable;
    for (const b of this.header.querySelectorAll('button')) {
      (b as HTMLButtonElement).disabled = !usable;
    }
  }

  private renderSetup(): void {
    const chat = this.chat;
    this.setup.replaceChildren();
    this.setup.className = 'nba-setup';
    const say = (html: string, cls = 'nba-setup-info') => {
      const p = el('div', cls);
      p.innerHTML = html;
      this.setup.append(p);
      return p;
    };
    const state = chat ? chat.link.state : 'no-notebook';
    this.node.dataset.link = state;
    this.node.dataset.ready = state === 'connected' && chat?.status ? 'true' : 'false';
    switch (state) {
      case 'no-notebook':
        say('Open a notebook: nbagent works in the active notebook’s kernel.');
        break;
      case 'no-kernel':
        say('This notebook has no kernel. Pick a Python kernel (<b>Kernel ▸ Change Kernel…</b>).');
        break;
      case 'connecting':
        say('Connecting to the kernel…');
        break;
      case 'restarting':
        say('The kernel is restarting…');
        break;
      case 'dead':
        say('The kernel died. Restart it (<b>Kernel ▸ Restart Kernel…</b>).', 'nba-setup-warn');
        break;
      case 'not-installed':
        say(
          'nbagent is not installed in this kernel’s environment. Run in a cell:' +
            '<pre>%pip install nbagent</pre>then restart the kernel and run <code>%load_ext nbagent</code>.',
          'nba-setup-warn'
        );
        break;
      case 'not-loaded': {
        const p = say(
          'nbagent is installed but not loaded in this kernel. Run <code>%load_ext nbagent</code> in a cell ' +
            '(the notebook’s first cell is a good place), or load it now:',
          'nba-setup-warn'
        );
        const button = el('button', 'nba-button nba-load', 'Load nbagent');
        button.addEventListener('click', () => void chat?.link.loadExtension());
        p.append(button);
        break;
      }
      case 'unsupported':
        say(
          'This kernel cannot run nbagent: it needs a Python kernel with nbagent installed ' +
            '(<code>%pip install nbagent</code>, then <code>%load_ext nbagent</code>).',
          'nba-setup-warn'
        );
        break;
      case 'connected': {
        const problem = chat?.status?.problem;
        if (!chat?.status) {
          say('Loading nbagent in the kernel…', 'nba-setup-info nba-muted');
        } else if (problem) {
          say('', 'nba-setup-warn').textContent = problem;
        } else if (!chat?.state.blocks.length) {
          say(
            'Ask the agent about this notebook and its project: it sees the kernel’s variables and the ' +
              'files. <code>/</code> lists the commands, <code>@file</code> attaches a file.',
            'nba-setup-info nba-muted'
          );
        }
        break;
      }
    }
    this.setup.hidden = this.setup.childElementCount === 0;
    const connected = state === 'connected';
    this.input.disabled = !connected;
    this.sendButton.disabled = !connected;
  }

  private renderFooter(): void {
    const chat = this.chat;
    const footer = chat?.state.footer;
    this.usage.textContent = footer ? footerText({ ...footer, model: footer.model || chat?.status?.model || '' }) : '';
    this.usage.title = 'Tokens and cost of this session; "turn" is the running turn\'s cost, updated after each step';
    this.usage.classList.toggle('nba-footer-stopped', Boolean(footer?.budget));
    const busy = Boolean(chat?.busy && chat.link.connected);
    this.stopButton.disabled = !busy;
    this.node.dataset.busy = busy ? 'true' : 'false';
  }

  private clearLog(): void {
    for (const r of this.renderers.values()) {
      r.renderer.dispose();
    }
    this.renderers.clear();
    this.nodes.clear();
    this.log.replaceChildren();
  }

  private renderBlocks(): void {
    const blocks = this.chat?.state.blocks ?? [];
    const stick = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 40;
    const keep = new Set(blocks.map(b => b.key));
    for (const [key, entry] of this.nodes) {
      if (!keep.has(key)) {
        entry.node.remove();
        this.nodes.delete(key);
        this.renderers.get(key)?.renderer.dispose();
        this.renderers.delete(key);
      }
    }
    let previous: HTMLElement | null = null;
    for (const block of blocks) {
      let entry = this.nodes.get(block.key);
      if (!entry) {
        entry = { node: el('div', `nba-block nba-${block.kind}`), rev: -1 };
        entry.node.dataset.key = block.key;
        this.nodes.set(block.key, entry);
      }
      if (entry.rev !== block.rev) {
        entry.rev = block.rev;
        this.renderBlock(block, entry.node);
      }
      const expected: Element | null = previous ? previous.nextElementSibling : this.log.firstElementChild;
      if (expected !== entry.node) {
        if (previous) {
          previous.after(entry.node);
        } else {
          this.log.prepend(entry.node);
        }
      }
      previous = entry.node;
    }
    if (stick) {
      this.log.scrollTop = this.log.scrollHeight;
    }
  }

  // -- blocks ----------------------------------------------------------------------------

  private renderBlock(block: Block, node: HTMLElement): void {
    renderBlock(block, node, this.cards);
  }

  private readonly cards: CardHost = {
    markdown: (key, node, text) => this.renderMarkdown(key, node, text),
    reply: (requestId, kind, feedback) => this.chat?.reply(requestId, kind, feedback)
  };

  private renderMarkdown(key: string, node: HTMLElement, text: string): void {
    const rendermime = this.rendermime;
    if (!rendermime) {
      node.classList.add('nba-plain');
      node.textContent = text;
      return;
    }
    let entry = this.renderers.get(key);
    if (!entry) {
      const renderer = rendermime.createRenderer('text/markdown');
      renderer.addClass('nba-markdown');
      node.replaceChildren(renderer.node);
      entry = { renderer, busy: false, again: null };
      this.renderers.set(key, entry);
    } else if (entry.renderer.node.parentElement !== node) {
      node.replaceChildren(entry.renderer.node);
    }
    node.dataset.text = text; // what the markdown says, for tests and copy
    const target = entry;
    const run = (value: string) => {
      target.busy = true;
      const model = new MimeModel({ data: { 'text/markdown': value }, trusted: false });
      target.renderer
        .renderModel(model)
        .catch(() => {
          target.renderer.node.textContent = value;
        })
        .then(() => {
          target.busy = false;
          if (target.again !== null) {
            const next = target.again;
            target.again = null;
            run(next);
          }
        });
    };
    if (target.busy) {
      target.again = text;
    } else {
      run(text);
    }
  }

  // -- sessions, model -----------------------------------------------------------------------

  private toggleSessions(): void {
    this.sessionsBox.hidden = !this.sessionsBox.hidden;
    if (!this.sessionsBox.hidden) {
      this.sessionsBox.replaceChildren(el('div', 'nba-muted', 'Loading…'));
      this.chat?.send({ type: 'list_sessions' });
    }
  }

  private renderSessions(): void {
    const info = this.chat?.sessions;
    if (!info || this.sessionsBox.hidden) {
      return;
    }
    const rows = info.rows.slice().sort((a, b) => b.updated - a.updated);
    const list = el('ul', 'nba-session-list');
    for (const row of rows) {
      const item = el('li', `nba-session${row.id === info.current ? ' nba-session-current' : ''}`);
      item.dataset.sessionId = row.id;
      const when = row.updated ? new Date(row.updated * 1000).toLocaleString() : '';
      item.append(
        el('code', '', row.id.slice(0, 20)),
        el('span', 'nba-muted', ` ${row.turns} turn${row.turns === 1 ? '' : 's'} · ${row.model} · ${when}`)
      );
      item.title = row.id === info.current ? 'the current session' : 'Continue this session';
      item.addEventListener('click', () => {
        this.chat?.send({ type: 'switch_session', id: row.id });
        this.sessionsBox.hidden = true;
      });
      list.append(item);
    }
    const head = el('div', 'nba-sessions-head', rows.length ? 'Sessions of this notebook' : 'No sessions yet.');
    this.sessionsBox.replaceChildren(head, list);
  }

  private setModel(): void {
    const model = this.modelInput.value.trim();
    if (model && this.chat && model !== this.chat.status?.model) {
      this.chat.send({ type: 'set_model', model });
      this.rememberModel(model);
    }
  }

  private loadModels(): void {
    let models: string[] = [];
    try {
      models = JSON.parse(window.localStorage.getItem(MODELS_KEY) ?? '[]');
    } catch {
      models = [];
    }
    this.modelList.replaceChildren(...models.map(m => Object.assign(el('option'), { value: m })));
  }

  private rememberModel(model: string): void {
    let models: string[] = [];
    try {
      models = JSON.parse(window.localStorage.getItem(MODELS_KEY) ?? '[]');
    } catch {
      models = [];
    }
    if (!models.includes(model)) {
      models = [model, ...models].slice(0, 20);
      try {
        window.localStorage.setItem(MODELS_KEY, JSON.stringify(models));
      } catch {
        // storage full or disabled
      }
      this.loadModels();
    }
  }

  // -- input -----------------------------------------------------------------------------------

  private stop(): void {
    this.chat?.send({ type: 'cancel' });
  }

  private async submit(): Promise<void> {
    const chat = this.chat;
    const text = this.input.value;
    if (!chat || !text.trim()) {
      return;
    }
    this.history.push(text);
    this.input.value = '';
    this.hideCompletions();
    if (text.trim().startsWith('/')) {
      chat.send({ type: 'command', line: text.trim() });
      return;
    }
    const mentions = parseMentions(text);
    const attached: AttachedFile[] = [];
    for (const path of mentions) {
      let content: string | null = null;
      try {
        content = this.files ? await this.files.read(path) : null;
      } catch {
        continue; // not a file: leave the @word as it is
      }
      attached.push({ path, content });
    }
    chat.send({ type: 'prompt', text: withAttachments(text, attached) });
  }

  private onKey(e: KeyboardEvent): void {
    if (!this.completionsBox.hidden && this.completions.length) {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        const n = this.completions.length;
        this.selected = (this.selected + (e.key === 'ArrowDown' ? 1 : n - 1)) % n;
        this.renderCompletions();
        return;
      }
      const exact = this.completions.some(c => c.insert.trim() === this.input.value.trim());
      if (e.key === 'Tab' || (e.key === 'Enter' && !e.shiftKey && !exact)) {
        e.preventDefault();
        this.accept(this.completions[this.selected]);
        return;
      }
      if (e.key === 'Escape') {
        e.preventDefault();
        this.hideCompletions();
        return;
      }
    }
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      void this.submit();
      return;
    }
    const caret = this.input.selectionStart ?? 0;
    if (e.key === 'ArrowUp' && !this.input.value.slice(0, caret).includes('\n')) {
      const prev = this.history.up(this.input.value);
      if (prev !== null) {
        e.preventDefault();
        this.input.value = prev;
      }
    } else if (e.key === 'ArrowDown' && !this.input.value.slice(caret).includes('\n')) {
      const next = this.history.down();
      if (next !== null) {
        e.preventDefault();
        this.input.value = next;
      }
    }
  }

  private accept(c: Completion): void {
    const { text, caret } = applyCompletion(this.input.value, c);
    this.input.value = text;
    this.input.setSelectionRange(caret, caret);
    this.hideCompletions();
    this.input.focus();
    if (c.insert.endsWith('/')) {
      void this.updateCompletions(); // a folder: show what is in it
    }
  }

  private async updateCompletions(): Promise<void> {
    const request = ++this.completionRequest;
    const text = this.input.value;
    const caret = this.input.selectionStart ?? text.length;
    let items: Completion[] = [];
    if (text.startsWith('/')) {
      items = slashCompletions(text, caret, this.chat?.status?.commands ?? STATIC_COMMANDS);
    } else {
      const token = mentionAt(text, caret);
      if (token && this.files) {
        try {
          const entries = await this.files.list(mentionFolder(token.query));
          items = mentionCompletions(token, entries);
        } catch {
          items = [];
        }
      }
    }
    if (request !== this.completionRequest) {
      return;
    }
    this.completions = items;
    this.selected = 0;
    this.renderCompletions();
  }

  private renderCompletions(): void {
    if (!this.completions.length) {
      this.hideCompletions();
      return;
    }
    this.completionsBox.hidden = false;
    this.completionsBox.replaceChildren(
      ...this.completions.map((c, i) => {
        const item = el('div', `nba-completion${i === this.selected ? ' nba-selected' : ''}`);
        item.append(el('span', 'nba-completion-label', c.label), el('span', 'nba-muted', ` ${c.detail}`));
        item.addEventListener('mousedown', e => {
          e.preventDefault();
          this.accept(c);
        });
        return item;
      })
    );
  }

  private hideCompletions(): void {
    this.completionsBox.hidden = true;
    this.completions = [];
  }
}
