import { describe, expect, it } from 'vitest';
import type { NbagentEvent } from '../src/generated/events';
import { ChatState, alwaysRules, footerText, summarizeInput } from '../src/state';

const usage = { input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0, reasoning_tokens: 0, cost: null };
const S = { session_id: 'ses_1' };

function turn(): NbagentEvent[] {
  return [
    { ...S, type: 'turn_started', turn_id: 't1', prompt: 'fix it', model: 'openai/x' },
    { ...S, type: 'step_started', step: 1 },
    { ...S, type: 'text_delta', message_id: 'm1', text: 'Look' },
    { ...S, type: 'text_delta', message_id: 'm1', text: 'ing.' },
    { ...S, type: 'tool_pending', call_id: 'c1', tool: 'bash' },
    { ...S, type: 'tool_running', call_id: 'c1', tool: 'bash', input: { command: 'make test' }, title: '' },
    { ...S, type: 'tool_output', call_id: 'c1', chunk: 'ok 1\n' },
    { ...S, type: 'tool_output', call_id: 'c1', chunk: 'ok 2\n' }
  ];
}

describe('ChatState', () => {
  it('folds streaming text into one block and tool events into one card', () => {
    const state = new ChatState();
    for (const e of turn()) {
      state.apply(e);
    }
    expect(state.blocks.map(b => b.kind)).toEqual(['user', 'text', 'tool']);
    const text = state.blocks[1];
    expect(text.kind === 'text' && text.text).toBe('Looking.');
    const tool = state.blocks[2];
    expect(tool.kind === 'tool' && tool.status).toBe('running');
    expect(tool.kind === 'tool' && tool.live).toBe('ok 1\nok 2\n');
    expect(state.running).toBe(true);
    expect(state.sessionId).toBe('ses_1');
  });

  it('bumps the revision of exactly the blocks an event changes', () => {
    const state = new ChatState();
    for (const e of turn()) {
      state.apply(e);
    }
    const [user, text, tool] = state.blocks;
    const revs = [user.rev, text.rev, tool.rev];
    const changed = state.apply({ ...S, type: 'tool_output', call_id: 'c1', chunk: 'more' });
    expect(changed).toEqual([tool]);
    expect([user.rev, text.rev, tool.rev]).toEqual([revs[0], revs[1], revs[2] + 1]);
  });

  it('completes tools, attaches diffs and places a permission prompt under its call', () => {
    const state = new ChatState();
    for (const e of turn()) {
      state.apply(e);
    }
    state.apply({ ...S, type: 'tool_pending', call_id: 'c2', tool: 'edit' });
    state.apply({ ...S, type: 'text_delta', message_id: 'm2', text: 'later text' });
    state.apply({
      ...S,
      type: 'permission_asked',
      request_id: 'p1',
      call_id: 'c2',
      tool: 'edit',
      title: 'Edit a.py',
      patterns: ['a.py'],
      reason: '',
      always: ['a.py'],
      details: {}
    });
    const kinds = state.blocks.map(b => b.kind);
    expect(kinds).toEqual(['user', 'text', 'tool', 'tool', 'permission', 'text']);
    expect(state.pending().map(p => p.asked.request_id)).toEqual(['p1']);
    state.markSent('p1');
    expect(state.pending()[0].sent).toBe(true);
    state.apply({ ...S, type: 'permission_replied', request_id: 'p1', reply: 'once', feedback: '', by: 'user' });
    expect(state.pending()).toEqual([]);
    state.apply({ ...S, type: 'diff', call_id: 'c2', path: 'a.py', diff: '-a\n+b', additions: 1, deletions: 1 });
    state.apply({
      ...S,
      type: 'tool_completed',
      call_id: 'c2',
      tool: 'edit',
      input: { file_path: 'a.py' },
      output: 'Edited',
      title: 'a.py',
      metadata: {},
      attachments: []
    });
    const edit = state.blocks[3];
    expect(edit.kind === 'tool' && edit.status).toBe('completed');
    expect(edit.kind === 'tool' && edit.diffs.map(d => d.path)).toEqual(['a.py']);
  });

  it('keeps one todo block per turn, updated in place', () => {
    const state = new ChatState();
    state.apply(turn()[0]);
    state.apply({ ...S, type: 'todo_updated', todos: [{ content: 'a', status: 'pending', priority: 'high', id: '1' }] });
    state.apply({ ...S, type: 'todo_updated', todos: [{ content: 'a', status: 'completed', priority: 'high', id: '1' }] });
    const todos = state.blocks.filter(b => b.kind === 'todo');
    expect(todos.length).toBe(1);
    expect(todos[0].kind === 'todo' && todos[0].todos[0].status).toBe('completed');
  });

  it('ends a cancelled turn: running tools become errors, the footer stops', () => {
    const state = new ChatState();
    for (const e of turn()) {
      state.apply(e);
    }
    state.apply({
      ...S,
      type: 'usage',
      step: 1,
      model: 'openai/x',
      usage,
      total: { ...usage, input_tokens: 1200, output_tokens: 30, cost: 0.0123 },
      context_tokens: 1230,
      context_limit: 10000
    });
    state.apply({ ...S, type: 'turn_finished', turn_id: 't1', reason: 'cancelled', steps: 1, usage, text: '' });
    const tool = state.blocks[2];
    expect(tool.kind === 'tool' && tool.status).toBe('error');
    expect(state.running).toBe(false);
    expect(footerText(state.footer)).toBe('openai/x · 1,200 in / 30 out · $0.0123 · context 12% of 10,000');
  });

  it('drops a partial message and pending calls on a retry', () => {
    const state = new ChatState();
    state.apply(turn()[0]);
    state.apply({ ...S, type: 'text_delta', message_id: 'm9', text: 'partial' });
    state.apply({ ...S, type: 'tool_pending', call_id: 'c9', tool: 'read' });
    state.apply({ ...S, type: 'retrying', attempt: 1, max_attempts: 3, wait: 0.5, reason: 'overloaded', discard_message_id: 'm9' });
    expect(state.blocks.map(b => b.kind)).toEqual(['user', 'notice']);
  });

  it('loads a history and resets on a new session', () => {
    const state = new ChatState();
    state.loadHistory('ses_2', [
      { ...S, type: 'turn_started', turn_id: 'u1', prompt: 'hi', model: '' },
      { ...S, type: 'text_delta', message_id: 'a1', text: 'hello' },
      { ...S, type: 'turn_finished', turn_id: 'u1', reason: 'stop', steps: 1, usage, text: '' }
    ]);
    expect(state.sessionId).toBe('ses_2');
    expect(state.blocks.map(b => b.kind)).toEqual(['user', 'text']);
    expect(state.running).toBe(false);
    state.reset(null);
    expect(state.blocks).toEqual([]);
  });
});

describe('helpers', () => {
  it('alwaysRules prefers the structured rules', () => {
    const asked = {
      ...S,
      type: 'permission_asked' as const,
      request_id: 'p',
      call_id: null,
      tool: 'bash',
      title: 't',
      patterns: [],
      reason: '',
      always: ['git status *'],
      details: {}
    };
    expect(alwaysRules(asked)).toEqual(['bash: git status *']);
    expect(alwaysRules({ ...asked, details: { always_rules: [{ permission: 'bash', pattern: 'ls *' }] } })).toEqual([
      'bash: ls *'
    ]);
  });

  it('summarizeInput says what a call does in one line', () => {
    expect(summarizeInput('bash', { command: 'make\nmake test' })).toBe('make …') // more lines follow, as the CLI and the cell say it;
    expect(summarizeInput('todowrite', { todos: [1, 2] })).toBe('2 items');
    expect(summarizeInput('x', {})).toBe('');
    expect(summarizeInput('read', { file_path: 'a'.repeat(200) }).length).toBe(120);
  });
});
