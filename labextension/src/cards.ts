/**
 * The cards of a turn (prompt, text, tool calls and their diffs, permission prompts, the plan,
 * notices) drawn from ChatState's blocks. The sidebar draws live turns with them; the MIME renderer
 * draws recorded turns (`application/vnd.nbagent.turn+json`) with them, so both look the same.
 *
 * DOM only (no innerHTML of model text): what the agent or a tool wrote is text, never markup.
 */
import type { DiffProduced } from './generated/events';
import type { Block, PermissionBlock, ToolBlock } from './state';
import { childLabel, childOpen } from './nested';
import { alwaysRules, diffCounts, summarizeInput, titleExtra } from './state';

/** What the cards need of the widget that holds them. */
export interface CardHost {
  /** Render `text` as markdown into `node` (a block's `key` identifies its renderer). */
  markdown(key: string, node: HTMLElement, text: string): void;
  /** Answer a permission request; null where the cards are a record (no buttons). */
  reply: ((requestId: string, kind: 'once' | 'always' | 'reject', feedback: string) => void) | null;
}

const STATUS_ICON: Record<string, string> = { pending: '○', running: '◐', completed: '✓', error: '✗' };
const TODO_MARK: Record<string, string> = { pending: '☐', in_progress: '◐', completed: '☑', cancelled: '☒' };
const DECISION: Record<string, [string, string]> = {
  allow: ['✓', 'allowed'],
  ask: ['?', 'asks'],
  deny: ['✗', 'denied']
};
const DIFF_SHOWN_LINES = 40;
const OUTPUT_CHARS = 20000;
const MAX_COMMANDS = 20;
// CSI, OSC (ended by BEL or ST), other escapes, the 8-bit CSI, a lone ESC (as nbagent.core.text)
const ANSI =
  // eslint-disable-next-line no-control-regex
  /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[P^_][^\x1b]*(?:\x1b\\)?|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]|\x1b/g;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  cls = '',
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (cls) {
    node.className = cls;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

export function clipMiddle(text: string, limit: number): string {
  if (text.length <= limit) {
    return text;
  }
  const half = Math.floor(limit / 2);
  return `${text.slice(0, half)}\n… [${(text.length - 2 * half).toLocaleString('en-US')} characters omitted] …\n${text.slice(-half)}`;
}

/** `text` without terminal colour codes and other escape sequences. */
export function stripAnsi(text: string): string {
  return text.includes('\x1b') || text.includes('\x9b') ? text.replace(ANSI, '') : text;
}

/** A shell permission request's commands as (mark, what, decision, why). */
export function shellParts(details: Record<string, unknown>): [string, string, string, string][] {
  const items = details['commands'];
  if (!Array.isArray(items)) {
    return [];
  }
  const out: [string, string, string, string][] = [];
  for (const item of items.slice(0, MAX_COMMANDS)) {
    if (typeof item !== 'object' || item === null) {
      out.push(['·', String(item), '', '']);
      continue;
    }
    const c = item as Record<string, unknown>;
    const action = String(c['action'] ?? '');
    const [mark, verb] = DECISION[action] ?? ['·', action];
    let what: string;
    if ('redirect' in c) {
      what = `${String(c['redirect'])} (redirect)`;
    } else {
      what = String(c['command'] ?? '');
      const via = Array.isArray(c['via']) ? c['via'].map(String) : [];
      if (via.length) {
        what += ` (run by ${via.join(' → ')})`;
      } else if (c['wrapper']) {
        what += ' (runs the command after it)';
      }
    }
    const reason = String(c['reason'] ?? '');
    const rule = String(c['rule'] ?? '');
    out.push([mark, what, verb, reason && reason !== `run ${String(c['command'])}` ? reason : rule]);
  }
  if (items.length > MAX_COMMANDS) {
    out.push(['…', `${items.length - MAX_COMMANDS} more`, '', '']);
  }
  return out;
}

/** A request's title without the excerpt of code the prompt shows in full below it. */
export function permissionTitle(title: string, details: Record<string, unknown>): string {
  const code = details['code'];
  const at = title.indexOf(': ');
  if (typeof code === 'string' && at >= 0) {
    const excerpt = title
      .slice(at + 2)
      .replace(/ \.\.\.$/, '')
      .replace(/…$/, '')
      .trim();
    if (excerpt && code.trim().startsWith(excerpt)) {
      return title.slice(0, at);
    }
  }
  return title;
}

/** Draw one block into its node (replacing what was there). */
export function renderBlock(block: Block, node: HTMLElement, host: CardHost): void {
  switch (block.kind) {
    case 'user': {
      node.replaceChildren(el('div', 'nba-user-text', clipMiddle(block.text, 2000)));
      return;
    }
    case 'text': {
      node.classList.toggle('nba-reasoning', block.reasoning);
      if (block.reasoning) {
        const details = node.querySelector('details') ?? el('details');
        if (!details.parentElement) {
          details.append(el('summary', '', 'reasoning'), el('div', 'nba-reasoning-text'));
          node.replaceChildren(details);
        }
        details.querySelector('.nba-reasoning-text')!.textContent = block.text;
        return;
      }
      host.markdown(block.key, node, block.text);
      return;
    }
    case 'tool':
      renderTool(block, node, host);
      return;
    case 'permission':
      renderPermission(block, node, host);
      return;
    case 'todo': {
      const list = el('ul', 'nba-todos');
      for (const t of block.todos) {
        const item = el('li', `nba-todo nba-todo-${t.status}`);
        item.append(el('span', 'nba-todo-mark', TODO_MARK[t.status] ?? '☐'), el('span', '', ` ${t.content}`));
        list.append(item);
      }
      node.replaceChildren(el('div', 'nba-todo-title', 'Plan'), list);
      return;
    }
    case 'notice': {
      node.className = `nba-block nba-notice nba-notice-${block.level}`;
      const parts: HTMLElement[] = [];
      if (block.icon) {
        parts.push(el('span', 'nba-notice-icon', `${block.icon} `));
      }
      parts.push(el('span', '', block.message));
      if (block.hint) {
        parts.push(el('div', 'nba-hint', block.hint));
      }
      if (block.detail) {
        const d = el('details');
        d.append(el('summary', '', 'details'), el('pre', 'nba-pre', block.detail));
        parts.push(d);
      }
      node.replaceChildren(...parts);
      return;
    }
    case 'command': {
      const body = el('div', 'nba-command-body');
      node.replaceChildren(el('div', 'nba-command-line', block.line), body);
      host.markdown(block.key, body, block.text);
      return;
    }
  }
}

function fold(role: string, label: string, body: HTMLElement, open: Set<string>): HTMLElement {
  const details = el('details');
  details.dataset.role = role;
  details.open = open.has(role);
  details.append(el('summary', 'nba-muted', label), body);
  return details;
}

export function renderTool(block: ToolBlock, node: HTMLElement, host: CardHost | null = null): void {
  const open = new Set<string>();
  for (const d of node.querySelectorAll(':scope > details[open]')) {
    open.add((d as HTMLElement).dataset.role ?? '');
  }
  const nested = node.querySelector<HTMLDetailsElement>(':scope > details.nba-subagent');
  node.className = `nba-block nba-tool nba-status-${block.status}`;
  node.dataset.callId = block.callId;
  node.dataset.tool = block.tool;
  node.dataset.status = block.status;
  if (block.tool === 'todowrite' && block.status === 'completed') {
    node.hidden = true; // the plan block shows it
    return;
  }
  node.hidden = false;
  const head = el('div', 'nba-tool-head');
  head.append(el('span', 'nba-tool-icon', STATUS_ICON[block.status] ?? '?'), el('b', 'nba-tool-name', ` ${block.tool} `));
  // the path or command is said once: the result's title only adds what the call does not say
  const summary = block.shownInPermission ? '' : summarizeInput(block.tool, block.input);
  const extra = block.shownInPermission ? '' : titleExtra(summary, block.title);
  if (summary) {
    head.append(el('code', 'nba-tool-summary', summary));
  }
  if (extra) {
    head.append(el('span', 'nba-muted nba-tool-extra', ` ${extra.slice(0, 120)}`));
  }
  const parts: HTMLElement[] = [head];
  const code = block.input['code'] ?? block.input['command'];
  if (
    !block.shownInPermission &&
    (block.tool === 'python' || block.tool === 'bash') &&
    typeof code === 'string' &&
    code.trim().includes('\n')
  ) {
    parts.push(fold('code', 'code', el('pre', 'nba-pre', clipMiddle(code, 4000)), open));
  }
  if (block.status === 'running' && block.live) {
    parts.push(el('pre', 'nba-pre nba-live', stripAnsi(block.live)));
  }
  for (const diff of block.diffs) {
    parts.push(diffNode(diff));
  }
  if (block.child && host) {
    // kept across redraws: its blocks are drawn again only when they change (a prompt keeps its input)
    const box = nested ?? el('details', 'nba-subagent');
    renderNested(block, box, host);
    parts.push(box);
  }
  if (block.status === 'completed') {
    const output = stripAnsi(block.output);
    const lines = output ? output.split('\n').length : 0;
    parts.push(
      fold('result', `result (${lines} line${lines === 1 ? '' : 's'})`, el('pre', 'nba-pre', clipMiddle(output, OUTPUT_CHARS)), open)
    );
  } else if (block.status === 'error') {
    parts.push(el('pre', 'nba-pre nba-error', clipMiddle(stripAnsi(block.error), 2000)));
  }
  node.replaceChildren(...parts);
}

const nestedNodes = new WeakMap<HTMLElement, Map<string, { node: HTMLElement; rev: number }>>();

/** A `task` card's child transcript: a <details> titled with the agent's name, open while the child
 * runs or asks, folded once it is done (a fold or unfold by the user stays until that changes). Its
 * blocks are the same cards; a child's permission prompt answers through the same host. */
export function renderNested(tool: ToolBlock, box: HTMLDetailsElement, host: CardHost): void {
  const run = tool.child;
  if (!run) {
    return;
  }
  box.dataset.role = 'subagent';
  box.dataset.agent = run.agent;
  let summary = box.querySelector<HTMLElement>(':scope > summary');
  let body = box.querySelector<HTMLElement>(':scope > .nba-subagent-body');
  if (!summary || !body) {
    summary = el('summary', 'nba-subagent-title');
    body = el('div', 'nba-subagent-body');
    box.replaceChildren(summary, body);
  }
  summary.textContent = `↳ agent ${childLabel(tool)}`;
  const auto = String(childOpen(run));
  if (box.dataset.auto !== auto) {
    box.dataset.auto = auto;
    box.open = auto === 'true';
  }
  const nodes = nestedNodes.get(body) ?? new Map<string, { node: HTMLElement; rev: number }>();
  nestedNodes.set(body, nodes);
  const blocks = run.state.blocks;
  const keep = new Set(blocks.map(b => b.key));
  for (const [key, entry] of nodes) {
    if (!keep.has(key)) {
      entry.node.remove();
      nodes.delete(key);
    }
  }
  const order: HTMLElement[] = [];
  for (const block of blocks) {
    let entry = nodes.get(block.key);
    if (!entry) {
      entry = { node: el('div', `nba-block nba-${block.kind}`), rev: -1 };
      entry.node.dataset.key = block.key;
      nodes.set(block.key, entry);
    }
    if (entry.rev !== block.rev) {
      entry.rev = block.rev;
      renderBlock(block, entry.node, host);
      if (block.kind === 'permission' && !block.replied) {
        entry.node.prepend(el('div', 'nba-subagent-asks', `↳ agent ${run.agent} asks:`));
      }
    }
    order.push(entry.node);
  }
  if (order.length !== body.children.length || order.some((n, i) => body.children[i] !== n)) {
    body.replaceChildren(...order);
  }
}

/** A diff box: the path and its counts, then the lines (wrapped: no sideways scrolling). Counts
 * missing from the event (0 and 0 for a diff that changes lines) are counted from the text. */
export function diffNode(diff: Pick<DiffProduced, 'path' | 'diff' | 'additions' | 'deletions'>): HTMLElement {
  let { additions, deletions } = diff;
  if (!additions && !deletions) {
    ({ additions, deletions } = diffCounts(diff.diff));
  }
  const box = el('div', 'nba-diff');
  const head = el('div', 'nba-diff-head');
  head.append(
    el('b', 'nba-diff-path', diff.path),
    el('span', 'nba-add-count', ` +${additions}`),
    el('span', 'nba-del-count', ` -${deletions}`)
  );
  const body = el('div', 'nba-diff-body');
  const lines = diff.diff.replace(/\n$/, '').split('\n');
  const line = (text: string) => {
    let cls = 'nba-diff-line';
    if (text.startsWith('+++') || text.startsWith('---')) {
      cls += ' nba-diff-file';
    } else if (text.startsWith('+')) {
      cls += ' nba-diff-add';
    } else if (text.startsWith('-')) {
      cls += ' nba-diff-del';
    } else if (text.startsWith('@@')) {
      cls += ' nba-diff-hunk';
    }
    return el('div', cls, text || ' ');
  };
  body.append(...lines.slice(0, DIFF_SHOWN_LINES).map(line));
  if (lines.length > DIFF_SHOWN_LINES) {
    const rest = el('details');
    rest.append(el('summary', 'nba-muted', `${lines.length - DIFF_SHOWN_LINES} more lines`));
    rest.append(...lines.slice(DIFF_SHOWN_LINES).map(line));
    body.append(rest);
  }
  box.append(head, body);
  return box;
}

export function renderPermission(block: PermissionBlock, node: HTMLElement, host: CardHost): void {
  const asked = block.asked;
  const details = (asked.details ?? {}) as Record<string, unknown>;
  node.className = `nba-block nba-permission${block.replied ? ' nba-answered' : ''}`;
  node.dataset.requestId = asked.request_id;
  const parts: HTMLElement[] = [
    el('div', 'nba-permission-title', `⚠ Permission: ${permissionTitle(asked.title, details)}`)
  ];
  if (asked.reason) {
    parts.push(el('div', 'nba-muted', `why: ${asked.reason}`));
  }
  const commands = shellParts(details);
  if (commands.length) {
    const list = el('ul', 'nba-permission-commands');
    for (const [mark, what, verb, why] of commands) {
      const item = el('li', '', `${mark} `);
      item.append(el('code', '', what));
      if (verb) {
        item.append(document.createTextNode(' — '), el('b', '', verb));
      }
      if (why) {
        item.append(el('span', 'nba-muted', ` ${why}`));
      }
      list.append(item);
    }
    parts.push(list);
  } else if (asked.patterns.length && asked.tool !== 'python' && typeof details['code'] !== 'string') {
    const c = el('div', 'nba-permission-patterns');
    for (const p of asked.patterns.slice(0, 10)) {
      c.append(el('code', '', p.slice(0, 200)), document.createTextNode(' '));
    }
    parts.push(c);
  }
  if (typeof details['code'] === 'string' && details['code']) {
    parts.push(el('pre', 'nba-pre', clipMiddle(details['code'] as string, 4000)));
  }
  if (typeof details['diff'] === 'string' && details['diff']) {
    const diff = details['diff'] as string;
    parts.push(diffNode({ path: 'proposed change', diff, ...diffCounts(diff) }));
  }
  const rules = alwaysRules(asked);
  if (block.replied) {
    const r = block.replied;
    const verb = { once: '✓ allowed once', always: '✓ always allowed', reject: '✗ denied' }[r.reply];
    let text = verb;
    if (r.reply === 'always' && rules.length) {
      text += ` (${rules.join(', ')})`;
    }
    if (r.by && r.by !== 'user') {
      text += ` by ${r.by}`;
    }
    if (r.feedback) {
      text += `: “${r.feedback}”`;
    }
    parts.push(el('div', 'nba-permission-answer', text));
    node.replaceChildren(...parts);
    return;
  }
  const reply = host.reply;
  if (!reply) {
    parts.push(el('div', 'nba-permission-answer nba-muted', 'not answered'));
    node.replaceChildren(...parts);
    return;
  }
  const buttons = el('div', 'nba-permission-buttons');
  const once = el('button', 'nba-button nba-allow-once', 'Allow once');
  const always = el('button', 'nba-button nba-allow-always', `Always: ${rules.join(', ') || 'this session'}`);
  always.title = `Allow, and save the rule: ${rules.join(', ') || 'this session'}`;
  const deny = el('button', 'nba-button nba-deny', 'Deny');
  const feedback = el('input', 'nba-feedback');
  feedback.placeholder = 'What to do instead? (sent with Deny)';
  feedback.title = 'Optional: sent to the agent with Deny (Enter denies)';
  buttons.append(once, always, deny);
  const answer = (kind: 'once' | 'always' | 'reject') => {
    for (const b of [once, always, deny]) {
      b.disabled = true;
    }
    reply(asked.request_id, kind, kind === 'reject' ? feedback.value.trim() : '');
  };
  once.addEventListener('click', () => answer('once'));
  always.addEventListener('click', () => answer('always'));
  deny.addEventListener('click', () => answer('reject'));
  feedback.addEventListener('keydown', e => {
    if (e.key === 'Enter') {
      e.preventDefault();
      answer('reject');
    }
  });
  if (block.sent) {
    for (const b of [once, always, deny]) {
      b.disabled = true;
    }
  }
  parts.push(buttons, feedback);
  node.replaceChildren(...parts);
}
