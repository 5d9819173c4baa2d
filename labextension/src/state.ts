/**
 * The sidebar's view model: the session's blocks folded from core events (no agent state).
 *
 * Pure: no JupyterLab imports, so it is unit-tested as is. The panel renders the blocks whose
 * `rev` changed since it last drew them.
 */
import type {
  DiffProduced,
  NbagentEvent,
  PermissionAsked,
  PermissionReplied,
  SubagentEvent,
  TodoItem,
  Usage
} from './generated/events';

export type ToolStatus = 'pending' | 'running' | 'completed' | 'error';
export const LIVE_TAIL_CHARS = 4000;

interface BlockBase {
  key: string;
  rev: number;
}

export interface UserBlock extends BlockBase {
  kind: 'user';
  turnId: string;
  text: string;
}

export interface TextBlock extends BlockBase {
  kind: 'text';
  messageId: string;
  text: string;
  reasoning: boolean;
}

export interface ToolBlock extends BlockBase {
  kind: 'tool';
  callId: string;
  tool: string;
  status: ToolStatus;
  input: Record<string, unknown>;
  title: string;
  live: string;
  output: string;
  error: string;
  diffs: DiffProduced[];
  shownInPermission: boolean; // its code is shown in full by the permission prompt below it
  child: ChildRun | null; // a `task` call's child agent: its transcript nests in the card
}

/** A child agent's run under a `task` call (its events arrive wrapped in `subagent` events). */
export interface ChildRun {
  agent: string;
  sessionId: string;
  state: ChatState;
}

export interface PermissionBlock extends BlockBase {
  kind: 'permission';
  asked: PermissionAsked;
  replied: PermissionReplied | null;
  sent: boolean; // answered from this sidebar, the kernel's confirmation not yet back
}

export interface TodoBlock extends BlockBase {
  kind: 'todo';
  todos: TodoItem[];
}

export interface NoticeBlock extends BlockBase {
  kind: 'notice';
  level: 'info' | 'warning' | 'error' | 'stop'; // stop: a budget ended the turn
  message: string;
  hint: string;
  detail: string;
  icon: string; // shown before the message ('⇄' a model switch, '■' a budget stop)
}

export interface CommandBlock extends BlockBase {
  kind: 'command';
  line: string;
  text: string; // markdown
}

export type Block =
  | UserBlock
  | TextBlock
  | ToolBlock
  | PermissionBlock
  | TodoBlock
  | NoticeBlock
  | CommandBlock;

export interface Footer {
  model: string;
  total: Usage | null; // the session's, as of the last step
  turn: Usage | null; // the running turn's steps (null until its first step)
  budget: string; // the budget that stopped the turn
  contextTokens: number;
  contextLimit: number;
  steps: number;
  reason: string;
  running: boolean;
}

export class ChatState {
  blocks: Block[] = [];
  footer: Footer = emptyFooter('');
  sessionId: string | null = null;
  private tools = new Map<string, ToolBlock>();
  private permissions = new Map<string, PermissionBlock>();
  private todo: TodoBlock | null = null;
  private counter = 0;

  /** `keyPrefix`: a child's blocks get keys apart from its parent's (markdown renderers are keyed). */
  constructor(private readonly keyPrefix = '') {}

  /** Forget everything (a new session, a history reload). */
  reset(sessionId: string | null = null, model = ''): void {
    this.blocks = [];
    this.tools.clear();
    this.permissions.clear();
    this.todo = null;
    this.sessionId = sessionId;
    this.footer = emptyFooter(model || this.footer.model);
    this.footer.running = false;
  }

  /** Replace the blocks with a session's history (events rebuilt from its messages). */
  loadHistory(sessionId: string | null, events: NbagentEvent[]): void {
    const model = this.footer.model;
    this.reset(sessionId, model);
    for (const event of events) {
      this.apply(event);
    }
    this.sessionId = sessionId;
    this.footer.running = false;
  }

  /** Fold one event in; returns the blocks it changed (new ones included). */
  apply(event: NbagentEvent): Block[] {
    const changed = this.fold(event);
    for (const block of changed) {
      block.rev += 1;
    }
    return changed;
  }

  get running(): boolean {
    return this.footer.running;
  }

  /** Permission requests still waiting for an answer, the nested children's included. */
  pending(): PermissionBlock[] {
    const out: PermissionBlock[] = [];
    for (const b of this.blocks) {
      if (b.kind === 'permission' && b.replied === null) {
        out.push(b);
      } else if (b.kind === 'tool' && b.child) {
        out.push(...b.child.state.pending());
      }
    }
    return out;
  }

  addNotice(
    message: string,
    level: NoticeBlock['level'] = 'info',
    hint = '',
    detail = '',
    icon = ''
  ): NoticeBlock {
    return this.push({ kind: 'notice', key: this.nextKey('n'), rev: 1, level, message, hint, detail, icon });
  }

  addCommand(line: string, text: string): CommandBlock {
    return this.push({ kind: 'command', key: this.nextKey('cmd'), rev: 1, line, text });
  }

  markSent(requestId: string): PermissionBlock | null {
    const block = this.permissions.get(requestId) ?? null;
    if (block) {
      block.sent = true;
      block.rev += 1;
      return block;
    }
    for (const tool of this.tools.values()) {
      const nested = tool.child?.state.markSent(requestId) ?? null;
      if (nested) {
        tool.rev += 1; // the card holding it is drawn again
        return nested;
      }
    }
    return null;
  }

  private nextKey(prefix: string): string {
    this.counter += 1;
    return `${this.keyPrefix}${prefix}${this.counter}`;
  }

  /** A child's event, folded into the transcript nested in its `task` card. */
  private foldChild(event: SubagentEvent): Block[] {
    const block = this.toolBlock(event.call_id, 'task');
    if (!block.child || block.child.sessionId !== event.child_session_id) {
      const state = new ChatState(`${block.key}.`);
      state.footer.model = this.footer.model;
      block.child = { agent: event.agent, sessionId: event.child_session_id, state };
    }
    block.child.state.apply(event.event as unknown as NbagentEvent);
    return [block];
  }

  private push<T extends Block>(block: T): T {
    this.blocks.push(block);
    return block;
  }

  private toolBlock(callId: string, tool: string): ToolBlock {
    let block = this.tools.get(callId);
    if (!block) {
      block = {
        kind: 'tool',
        key: this.nextKey('c'),
        rev: 0,
        callId,
        tool,
        status: 'pending',
        input: {},
        title: '',
        live: '',
        output: '',
        error: '',
        diffs: [],
        shownInPermission: false,
        child: null
      };
      this.tools.set(callId, block);
      this.push(block);
    }
    return block;
  }

  private fold(event: NbagentEvent): Block[] {
    switch (event.type) {
      case 'turn_started': {
        this.sessionId = event.session_id || this.sessionId;
        this.todo = null;
        this.footer = { ...emptyFooter(event.model || this.footer.model), total: this.footer.total };
        this.footer.running = true;
        return [
          this.push({ kind: 'user', key: this.nextKey('u'), rev: 0, turnId: event.turn_id, text: event.prompt })
        ];
      }
      case 'text_delta':
      case 'reasoning_delta': {
        const reasoning = event.type === 'reasoning_delta';
        const last = this.blocks[this.blocks.length - 1];
        if (last && last.kind === 'text' && last.messageId === event.message_id && last.reasoning === reasoning) {
          last.text += event.text;
          return [last];
        }
        return [
          this.push({
            kind: 'text',
            key: this.nextKey(reasoning ? 'r' : 't'),
            rev: 0,
            messageId: event.message_id,
            text: event.text,
            reasoning
          })
        ];
      }
      case 'tool_pending':
        return [this.toolBlock(event.call_id, event.tool)];
      case 'tool_running': {
        const block = this.toolBlock(event.call_id, event.tool);
        block.status = 'running';
        block.input = event.input;
        block.title = event.title;
        return [block];
      }
      case 'tool_output': {
        const block = this.tools.get(event.call_id);
        if (!block) {
          return [];
        }
        block.live = (block.live + event.chunk).slice(-LIVE_TAIL_CHARS);
        return [block];
      }
      case 'tool_completed': {
        const block = this.toolBlock(event.call_id, event.tool);
        block.status = 'completed';
        block.input = Object.keys(event.input).length ? event.input : block.input;
        block.output = event.output;
        block.title = event.title || block.title;
        block.live = '';
        endChild(block);
        return [block];
      }
      case 'tool_error': {
        const block = this.toolBlock(event.call_id, event.tool);
        block.status = 'error';
        block.input = Object.keys(event.input).length ? event.input : block.input;
        block.error = event.error;
        block.live = '';
        endChild(block);
        return [block];
      }
      case 'diff': {
        const block = this.tools.get(event.call_id);
        if (!block) {
          return [];
        }
        block.diffs.push(event);
        return [block];
      }
      case 'permission_asked': {
        const block: PermissionBlock = {
          kind: 'permission',
          key: this.nextKey('p'),
          rev: 0,
          asked: event,
          replied: null,
          sent: false
        };
        this.permissions.set(event.request_id, block);
        const owner = event.call_id ? this.tools.get(event.call_id) : undefined;
        const at = owner ? this.blocks.indexOf(owner) : -1;
        if (at >= 0) {
          let index = at + 1;
          while (index < this.blocks.length && this.blocks[index].kind === 'permission') {
            index += 1;
          }
          this.blocks.splice(index, 0, block);
          const code = (event.details as Record<string, unknown>)['code'];
          if (owner && typeof code === 'string' && !owner.shownInPermission) {
            owner.shownInPermission = true; // the code is shown once, in the prompt
            return [block, owner];
          }
        } else {
          this.push(block);
        }
        return [block];
      }
      case 'permission_replied': {
        const block = this.permissions.get(event.request_id);
        if (!block) {
          // a child's request, answered by the parent
          return [...this.tools.values()].filter(t => t.child && t.child.state.apply(event).length);
        }
        block.replied = event;
        return [block];
      }
      case 'todo_updated': {
        if (!this.todo) {
          this.todo = this.push({ kind: 'todo', key: this.nextKey('todo'), rev: 0, todos: [] });
        }
        this.todo.todos = event.todos;
        return [this.todo];
      }
      case 'notice':
        return [this.addNotice(event.message, event.level)];
      case 'error':
        return [this.addNotice(event.message, 'error', event.hint)];
      case 'retrying': {
        const gone = this.blocks.filter(
          b =>
            (b.kind === 'text' && b.messageId === event.discard_message_id) ||
            (b.kind === 'tool' && b.status === 'pending')
        );
        this.blocks = this.blocks.filter(b => !gone.includes(b));
        for (const b of gone) {
          if (b.kind === 'tool') {
            this.tools.delete(b.callId);
          }
        }
        return [
          this.addNotice(
            `Retry ${event.attempt}/${event.max_attempts - 1} in ${event.wait.toFixed(1)}s: ${event.reason.slice(0, 300)}`,
            'warning'
          )
        ];
      }
      case 'compaction':
        return [
          this.addNotice(
            `Context compacted (${event.tokens_before.toLocaleString()} → ${event.tokens_after.toLocaleString()} tokens).`,
            'info',
            '',
            event.summary
          )
        ];
      case 'model_switched':
        this.footer.model = event.to_model;
        return [this.addNotice(event.message, event.reason === 'failover' ? 'warning' : 'info', '', '', '⇄')];
      case 'budget':
        if (event.level === 'stop') {
          this.footer.budget = event.budget;
          return [this.addNotice(event.message, 'stop', '', '', '■')];
        }
        return [this.addNotice(event.message, 'warning', '', '', '!')];
      case 'usage':
        this.footer.turn = addUsage(this.footer.turn, event.usage);
        this.footer.total = event.total;
        this.footer.contextTokens = event.context_tokens;
        this.footer.contextLimit = event.context_limit;
        if (event.step) {
          // step 0: a child's usage rolled up (its model, not this turn's step)
          this.footer.model = event.model;
          this.footer.steps = event.step;
        }
        return [];
      case 'turn_finished':
        if (this.footer.turn !== null || event.steps > 0) {
          this.footer.turn = event.usage;
        }
        this.footer.steps = event.steps;
        this.footer.reason = event.reason;
        this.footer.running = false;
        for (const tool of this.tools.values()) {
          if (tool.status === 'pending' || tool.status === 'running') {
            tool.status = 'error';
            tool.error = tool.error || `interrupted (${event.reason})`;
            endChild(tool);
            tool.rev += 1;
          }
        }
        return [];
      case 'subagent':
        return this.foldChild(event);
      case 'step_started':
      case 'context':
        return [];
      default:
        return [];
    }
  }
}

/** The child's transcript stops running once its task call ends (cancelled, failed or done). */
function endChild(tool: ToolBlock): void {
  if (tool.child) {
    tool.child.state.footer.running = false;
  }
}

export function emptyFooter(model: string): Footer {
  return {
    model,
    total: null,
    turn: null,
    budget: '',
    contextTokens: 0,
    contextLimit: 0,
    steps: 0,
    reason: '',
    running: false
  };
}

/** The sum of two usages (a cost known on either side is kept, as nbagent.core.messages.Usage adds). */
export function addUsage(a: Usage | null, b: Usage): Usage {
  if (a === null) {
    return { ...b };
  }
  const known = (a.cost ?? null) !== null || (b.cost ?? null) !== null;
  return {
    input_tokens: a.input_tokens + b.input_tokens,
    output_tokens: a.output_tokens + b.output_tokens,
    cache_read_tokens: a.cache_read_tokens + b.cache_read_tokens,
    cache_write_tokens: a.cache_write_tokens + b.cache_write_tokens,
    reasoning_tokens: a.reasoning_tokens + b.reasoning_tokens,
    cost: known ? (a.cost ?? 0) + (b.cost ?? 0) : null
  };
}

/** "model · 1,234 in / 56 out · $0.0012 · turn $0.0004 · context 12% of 200,000": the session's
 * tokens and cost, the running turn's cost beside them (live: updated after each step). */
export function footerText(footer: Footer): string {
  const parts: string[] = [];
  if (footer.model) {
    parts.push(footer.model);
  }
  if (footer.total) {
    const t = footer.total;
    parts.push(`${t.input_tokens.toLocaleString('en-US')} in / ${t.output_tokens.toLocaleString('en-US')} out`);
    parts.push(t.cost === null || t.cost === undefined ? 'cost unknown' : `$${t.cost.toFixed(4)}`);
    const turn = footer.turn?.cost;
    if (turn !== null && turn !== undefined && typeof t.cost === 'number' && turn.toFixed(4) !== t.cost.toFixed(4)) {
      parts.push(`turn $${turn.toFixed(4)}`);
    }
  }
  if (footer.contextLimit > 0) {
    const share = Math.round((100 * footer.contextTokens) / footer.contextLimit);
    parts.push(`context ${share}% of ${footer.contextLimit.toLocaleString('en-US')}`);
  }
  if (footer.budget) {
    parts.push(`stopped: ${footer.budget.replace('_', ' ')} budget reached`);
  }
  return parts.join(' · ');
}

/** The rules an "Always" answer saves, written `permission: pattern`. */
export function alwaysRules(asked: PermissionAsked): string[] {
  const raw = (asked.details as Record<string, unknown>)['always_rules'];
  if (Array.isArray(raw) && raw.length) {
    return raw
      .filter((r): r is Record<string, unknown> => typeof r === 'object' && r !== null)
      .map(r => `${String(r['permission'])}: ${String(r['pattern'])}`);
  }
  return asked.always.map(a => (a.includes(':') ? a : `${asked.tool}: ${a}`));
}

const SUMMARY_CHARS = 120;
/** The parameter that says most about a call (the first one present wins), as nbagent.core.text has it. */
const KEY_PARAMS = ['command', 'file_path', 'notebook_path', 'pattern', 'url', 'name', 'path', 'code', 'description'];

function oneLine(value: string, limit = SUMMARY_CHARS): string {
  const stripped = value.trim();
  const line = stripped ? stripped.split('\n')[0] : '';
  if (line.length > limit) {
    return `${line.slice(0, limit - 2).trimEnd()} …`;
  }
  return line + (stripped.includes('\n') ? ' …' : '');
}

/** The files a patch (`*** Update File: a.py` ...) touches. */
export function patchFiles(patch: string): string[] {
  const files: string[] = [];
  for (const line of patch.split('\n')) {
    const m = /^\*\*\* (?:Add|Update|Delete) File: (.+)$|^\*\*\* Move to: (.+)$/.exec(line.trim());
    const file = m ? (m[1] ?? m[2]).trim() : '';
    if (file && !files.includes(file)) {
      files.push(file);
    }
  }
  return files;
}

/** One line saying what a tool call does (as the CLI and the cell widget say it). */
export function summarizeInput(tool: string, input: Record<string, unknown>): string {
  for (const key of KEY_PARAMS) {
    const value = input[key];
    if (typeof value === 'string' && value.trim()) {
      return oneLine(value);
    }
  }
  if (tool === 'apply_patch' && typeof input['patch'] === 'string') {
    return oneLine(patchFiles(input['patch']).join(', '));
  }
  if (tool === 'todowrite') {
    const todos = input['todos'];
    return `${Array.isArray(todos) ? todos.length : 0} items`;
  }
  const text = JSON.stringify(input);
  return text === '{}' ? '' : oneLine(text);
}

/** What a result's title adds to the call's summary: nothing when it repeats it (`read a.py` titled
 * `a.py`, or `/root/a.py` titled `a.py`), the rest when it starts with it. */
export function titleExtra(summary: string, title: string): string {
  const t = title.split(/\s+/).filter(Boolean).join(' ');
  let s = summary.split(/\s+/).filter(Boolean).join(' ');
  if (s.endsWith(' …')) {
    s = s.slice(0, -2);
  }
  if (!t || t === s || (s && s.includes(t))) {
    return '';
  }
  if (s && t.startsWith(s)) {
    return t.slice(s.length).replace(/^[\s·:\-–—()]+|[\s·:\-–—()]+$/g, '');
  }
  return t;
}

/** Lines added and removed by a unified diff (file headers not counted). */
export function diffCounts(diff: string): { additions: number; deletions: number } {
  let additions = 0;
  let deletions = 0;
  for (const line of diff.split('\n')) {
    if (line.startsWith('+') && !line.startsWith('+++')) {
      additions += 1;
    } else if (line.startsWith('-') && !line.startsWith('---')) {
      deletions += 1;
    }
  }
  return { additions, deletions };
}
