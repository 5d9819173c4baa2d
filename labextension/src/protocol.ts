/** The comm protocol between the sidebar and nbagent.jupyter.bridge (target "nbagent"). */
import type { NbagentEvent } from './generated/events';
import type { CommandInfo } from './completion';

export const TARGET = 'nbagent';
export const TURN_MIME = 'application/vnd.nbagent.turn+json';

export type ToKernel =
  | { type: 'hello'; path?: string }
  | { type: 'prompt'; text: string }
  | { type: 'command'; line: string }
  | { type: 'reply'; request_id: string; reply: 'once' | 'always' | 'reject'; feedback: string }
  | { type: 'cancel' }
  | { type: 'set_model'; model: string }
  | { type: 'new_session' }
  | { type: 'list_sessions' }
  | { type: 'switch_session'; id: string }
  | { type: 'sync_metadata'; cells: unknown[] };

export interface Status {
  type: 'status';
  protocol: number;
  version: string;
  model: string;
  problem: string;
  session_id: string | null;
  mode: string | null;
  busy: boolean;
  running: string | null;
  notebook: string | null;
  root: string;
  commands: CommandInfo[];
  /** The MCP servers (absent from an older kernel). */
  mcp?: McpStatus;
}

/** A server's state, as McpSession.snapshot() (nbagent/core/mcp_session.py) says it. */
export type McpState = 'ready' | 'failed' | 'starting' | 'idle' | 'not started' | 'disabled' | 'needs trust';

export interface McpServerRow {
  name: string;
  transport: string;
  scope: 'user' | 'project';
  where: string;
  state: McpState;
  tools: string[];
  tool_count: number;
  prompts: string[];
  resources: number;
  start_ms: number | null;
  error: string;
}

export interface McpStatus {
  servers: McpServerRow[];
  errors: string[];
  /** MCP tools loaded on demand through tool_search. */
  deferred: number;
  /** The URL this kernel is served at over MCP (`/mcp-serve`), or null. */
  serving: string | null;
}

export interface SessionRow {
  id: string;
  model: string;
  turns: number;
  updated: number;
  cost?: number | null;
}

export type FromKernel =
  | { type: 'hello'; protocol: number; version: string }
  | Status
  | { type: 'history'; session_id: string | null; events: NbagentEvent[] }
  | { type: 'event'; event: NbagentEvent }
  | { type: 'record'; source: string; bundle: Record<string, unknown> }
  | { type: 'command_result'; line: string; text: string }
  | { type: 'sessions'; current: string | null; sessions: SessionRow[]; notebook: string | null }
  | { type: 'metadata'; metadata: Record<string, unknown> }
  | { type: 'notice'; message: string }
  | { type: 'error'; message: string; hint?: string };

/** What the probe (a user expression in the kernel) said; see bridge.probe(). */
export interface Probe {
  version: string;
  loaded: boolean;
  registered: boolean;
  protocol: number;
}

export const PROBE_EXPRESSION = "__import__('nbagent.jupyter.bridge', fromlist=['probe']).probe()";

/** Read the probe's user-expression result (JSON in application/json or text/plain). */
export function readProbe(result: unknown): Probe | 'not-installed' | 'error' {
  if (typeof result !== 'object' || result === null) {
    return 'error';
  }
  const r = result as Record<string, unknown>;
  if (r['status'] !== 'ok') {
    const ename = String(r['ename'] ?? '');
    return ename === 'ModuleNotFoundError' || ename === 'ImportError' ? 'not-installed' : 'error';
  }
  const data = (r['data'] ?? {}) as Record<string, unknown>;
  const json = data['application/json'];
  if (typeof json === 'object' && json !== null) {
    return json as Probe;
  }
  const text = data['text/plain'];
  if (typeof text === 'string') {
    try {
      return JSON.parse(text) as Probe;
    } catch {
      return 'error';
    }
  }
  return 'error';
}
