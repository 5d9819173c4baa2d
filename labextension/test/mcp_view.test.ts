import { describe, expect, it } from 'vitest';
import { mcpModel, serverLine } from '../src/mcp_view';
import type { McpServerRow, McpStatus } from '../src/protocol';

function row(name: string, state: McpServerRow['state'], more: Partial<McpServerRow> = {}): McpServerRow {
  return {
    name,
    transport: 'stdio',
    scope: 'user',
    where: `${name}-server --stdio`,
    state,
    tools: [],
    tool_count: 0,
    prompts: [],
    resources: 0,
    start_ms: null,
    error: '',
    ...more
  };
}

function status(servers: McpServerRow[], more: Partial<McpStatus> = {}): McpStatus {
  return { servers, errors: [], deferred: 0, serving: null, ...more };
}

const READY = row('fx', 'ready', { tools: ['echo', 'add', 'crash'], tool_count: 3, prompts: ['review'], resources: 1, start_ms: 420 });
const ERROR =
  "MCP server 'broken' (no-such-mcp-program-xyz) the program was not found (no-such-mcp-program-xyz); install it or " +
  'fix "command". Its stderr ends: ' +
  'word '.repeat(80);

describe('the MCP section of the sidebar', () => {
  it('is hidden when no server is configured and nothing is served', () => {
    expect(mcpModel(null).visible).toBe(false);
    expect(mcpModel(undefined).visible).toBe(false); // an older kernel: no `mcp` in its status
    expect(mcpModel(status([])).visible).toBe(false);
  });

  it('counts the ready servers and warns when one failed, with its whole error', () => {
    const model = mcpModel(status([READY, row('broken', 'failed', { error: ERROR }), row('docs', 'ready')]));
    expect(model.visible).toBe(true);
    expect(model.header).toBe('MCP · 2 of 3 ready · 1 failed');
    expect(model.level).toBe('error');
    const broken = model.servers[1];
    expect(broken.state).toBe('failed');
    expect(broken.error).toBe(ERROR); // never cut: the fix is at its end
    expect(broken.tools).toBe('');
  });

  it('shows a ready server with its tool count, the names in the tooltip, transport and scope', () => {
    const line = serverLine(READY);
    expect(line.tools).toBe('3 tools');
    expect(line.toolNames).toBe('echo, add, crash\nprompts: review\n1 resource');
    expect(line.meta).toBe('stdio · user');
    expect(serverLine(row('one', 'ready', { tools: ['only'], tool_count: 1 })).tools).toBe('1 tool');
    expect(serverLine(row('none', 'ready')).toolNames).toBe('no tools');
  });

  it('says which servers are not started, starting or need trust, and not ok until all are ready', () => {
    const before = mcpModel(status([row('a', 'not started'), row('b', 'not started', { scope: 'project' })]));
    expect(before.header).toBe('MCP · 0 of 2 ready · 2 not started');
    expect(before.level).toBe('idle');
    const starting = mcpModel(status([READY, row('b', 'starting')]));
    expect(starting.header).toBe('MCP · 1 of 2 ready · 1 starting');
    expect(starting.level).toBe('busy');
    const trust = mcpModel(status([READY, row('p', 'needs trust', { scope: 'project' })]));
    expect(trust.header).toBe('MCP · 1 of 2 ready · 1 needs trust');
    expect(trust.level).toBe('warn');
    expect(trust.servers[1].slug).toBe('needs-trust');
    const two = mcpModel(status([row('p', 'needs trust'), row('q', 'needs trust')]));
    expect(two.header).toBe('MCP · 0 of 2 ready · 2 need trust');
    expect(mcpModel(status([READY])).level).toBe('ok');
  });

  it('leaves disabled servers out of the count', () => {
    const model = mcpModel(status([READY, row('off', 'disabled')]));
    expect(model.header).toBe('MCP · 1 of 1 ready · 1 disabled');
    expect(model.level).toBe('ok');
  });

  it('shows config errors, the deferred tools and the URL this kernel is served at', () => {
    const errors = mcpModel(status([], { errors: ['nbagent.json: "mcp.x" must be an object; it is left out.'] }));
    expect(errors.visible).toBe(true);
    expect(errors.header).toBe('MCP · 1 config error');
    expect(errors.level).toBe('error');
    expect(errors.errors).toEqual(['nbagent.json: "mcp.x" must be an object; it is left out.']);
    const served = mcpModel(status([], { serving: 'http://127.0.0.1:8765/mcp' }));
    expect(served.visible).toBe(true);
    expect(served.header).toBe('MCP · serving this kernel');
    expect(served.serving).toBe('http://127.0.0.1:8765/mcp');
    const deferred = mcpModel(status([READY], { deferred: 60 }));
    expect(deferred.notes).toEqual(['60 MCP tools loaded on demand through tool_search.']);
  });
});
