/**
 * The sidebar's MCP section, from the `mcp` field of the kernel's status (McpSession.snapshot() in
 * nbagent/core/mcp_session.py): a header line ("MCP · 2 of 3 ready") that opens a list with, per server,
 * a state dot and word, its name, transport and scope, its tools (the names in a tooltip and on click)
 * and, for a failed server, its error in full; then the config errors and the URL this kernel is served
 * at over MCP. Hidden when there is nothing to show (no server configured, nothing served).
 *
 * `mcpModel` is pure (unit-tested); `McpView` draws it with the DOM (no innerHTML: names, errors and
 * URLs are text).
 */
import { el } from './cards';
import type { McpServerRow, McpState, McpStatus } from './protocol';

/** The header's look: a failure or a config error, a trust question, servers starting, all ready, none started. */
export type McpLevel = 'error' | 'warn' | 'busy' | 'ok' | 'idle';

export interface McpServerLine {
  name: string;
  state: McpState;
  /** The state as a class suffix ("needs trust" -> "needs-trust"). */
  slug: string;
  /** "stdio · user" */
  meta: string;
  /** "8 tools" for a ready server, else "". */
  tools: string;
  /** The tool names (and prompts, resources): the tools' tooltip and expanded text. */
  toolNames: string;
  where: string;
  error: string;
}

export interface McpModel {
  visible: boolean;
  header: string;
  level: McpLevel;
  servers: McpServerLine[];
  errors: string[];
  notes: string[];
  serving: string | null;
}

/** The states counted after "N of M ready", in this order. */
const EXTRAS: McpState[] = ['failed', 'starting', 'needs trust', 'not started', 'idle', 'disabled'];

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function serverLine(row: McpServerRow): McpServerLine {
  const ready = row.state === 'ready';
  const names = [row.tools.join(', ') || 'no tools'];
  if (row.prompts.length) {
    names.push(`prompts: ${row.prompts.join(', ')}`);
  }
  if (row.resources) {
    names.push(plural(row.resources, 'resource'));
  }
  return {
    name: row.name,
    state: row.state,
    slug: row.state.replace(/\s+/g, '-'),
    meta: `${row.transport} · ${row.scope}`,
    tools: ready ? plural(row.tool_count, 'tool') : '',
    toolNames: ready ? names.join('\n') : '',
    where: row.where,
    error: row.error
  };
}

export function mcpModel(mcp: McpStatus | null | undefined): McpModel {
  const servers = mcp?.servers ?? [];
  const errors = mcp?.errors ?? [];
  const serving = mcp?.serving ?? null;
  const count = (state: McpState) => servers.filter(s => s.state === state).length;
  const enabled = servers.length - count('disabled');
  const parts = ['MCP'];
  if (servers.length) {
    parts.push(`${count('ready')} of ${enabled} ready`);
    for (const state of EXTRAS) {
      const n = count(state);
      if (n) {
        parts.push(`${n} ${state === 'needs trust' && n > 1 ? 'need trust' : state}`);
      }
    }
  }
  if (errors.length) {
    parts.push(plural(errors.length, 'config error'));
  }
  if (serving) {
    parts.push('serving this kernel');
  }
  let level: McpLevel = 'idle';
  if (count('failed') || errors.length) {
    level = 'error';
  } else if (count('needs trust')) {
    level = 'warn';
  } else if (count('starting')) {
    level = 'busy';
  } else if (enabled && count('ready') === enabled) {
    level = 'ok';
  }
  const notes = mcp?.deferred ? [`${plural(mcp.deferred, 'MCP tool')} loaded on demand through tool_search.`] : [];
  return {
    visible: servers.length > 0 || errors.length > 0 || Boolean(serving),
    header: parts.join(' · '),
    level,
    servers: servers.map(serverLine),
    errors,
    notes,
    serving
  };
}

/** The MCP section's DOM: `node` is mounted once by the panel and updated with each status. */
export class McpView {
  readonly node: HTMLDetailsElement;
  private readonly summary: HTMLElement;
  private readonly body: HTMLElement;
  /** The user opened or closed the list: it stays so (until then it opens when a server fails). */
  private toggled = false;
  private readonly openTools = new Set<string>();
  private shown = '';

  constructor() {
    this.node = el('details', 'nba-mcp');
    this.summary = el('summary', 'nba-mcp-head');
    this.summary.title = 'The MCP servers of this notebook’s session: click for their state, tools and errors';
    this.summary.addEventListener('click', () => {
      this.toggled = true;
    });
    this.body = el('div', 'nba-mcp-body');
    this.node.append(this.summary, this.body);
    this.node.hidden = true;
  }

  /** Show `mcp` (redrawn only when it changed: a selection in an error survives the chat's updates). */
  update(mcp: McpStatus | null | undefined): void {
    const key = JSON.stringify(mcp ?? null);
    if (key === this.shown) {
      return;
    }
    this.shown = key;
    const model = mcpModel(mcp);
    this.node.hidden = !model.visible;
    this.node.dataset.level = model.level;
    this.summary.textContent = model.header;
    if (!this.toggled) {
      this.node.open = model.level === 'error';
    }
    for (const d of this.body.querySelectorAll<HTMLDetailsElement>('details.nba-mcp-tools')) {
      const name = d.dataset.server ?? '';
      if (d.open) {
        this.openTools.add(name);
      } else {
        this.openTools.delete(name);
      }
    }
    const list = el('ul', 'nba-mcp-servers');
    list.append(...model.servers.map(line => this.serverItem(line)));
    const extra = [
      ...model.errors.map(e => el('div', 'nba-mcp-error nba-mcp-config-error', e)),
      ...model.notes.map(n => el('div', 'nba-muted', n))
    ];
    if (model.serving) {
      const serving = el('div', 'nba-mcp-serving', 'Serving this kernel over MCP at ');
      serving.append(el('code', '', model.serving));
      extra.push(serving);
    }
    this.body.replaceChildren(...(model.servers.length ? [list] : []), ...extra);
  }

  private serverItem(line: McpServerLine): HTMLElement {
    const item = el('li', `nba-mcp-server nba-mcp-${line.slug}`);
    item.dataset.server = line.name;
    item.dataset.state = line.state;
    const head = el('div', 'nba-mcp-line');
    const dot = el('span', 'nba-mcp-dot');
    dot.setAttribute('aria-hidden', 'true');
    const name = el('span', 'nba-mcp-name', line.name);
    name.title = line.where;
    head.append(dot, el('span', 'nba-mcp-state', line.state), name, el('span', 'nba-mcp-meta nba-muted', line.meta));
    if (line.tools) {
      const tools = el('details', 'nba-mcp-tools');
      tools.dataset.server = line.name;
      tools.open = this.openTools.has(line.name);
      const count = el('summary', 'nba-mcp-tool-count', line.tools);
      count.title = line.toolNames;
      tools.append(count, el('div', 'nba-mcp-tool-names', line.toolNames));
      head.append(tools);
    }
    item.append(head);
    if (line.error) {
      item.append(el('div', 'nba-mcp-error', line.error));
    }
    return item;
  }
}
