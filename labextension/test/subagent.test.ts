import { describe, expect, it } from 'vitest';
import type { NbagentEvent } from '../src/generated/events';
import { childLabel, childOpen } from '../src/nested';
import { ChatState, type ToolBlock } from '../src/state';

const USAGE = { input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0, reasoning_tokens: 0, cost: null };
const TASK_INPUT = { description: 'find the parser', prompt: 'Where is X parsed?', subagent_type: 'explore' };

function sub(event: Record<string, unknown>, call = 'task1', child = 'ses_child', agent = 'explore'): NbagentEvent {
  return { session_id: 'ses_parent', type: 'subagent', call_id: call, agent, child_session_id: child, event } as NbagentEvent;
}

function started(): NbagentEvent[] {
  return [
    { session_id: 'ses_parent', type: 'turn_started', turn_id: 't1', prompt: 'where?', model: 'm' } as NbagentEvent,
    { session_id: 'ses_parent', type: 'tool_running', call_id: 'task1', tool: 'task', input: TASK_INPUT, title: '' } as NbagentEvent,
    sub({ type: 'turn_started', session_id: 'ses_child', turn_id: 'ct1', prompt: 'Where is X parsed?', model: 'm' }),
    sub({ type: 'text_delta', session_id: 'ses_child', message_id: 'cm1', text: 'Looking' }),
    sub({ type: 'tool_running', session_id: 'ses_child', call_id: 'g1', tool: 'grep', input: { pattern: 'def parse' }, title: '' }),
    sub({
      type: 'permission_asked',
      session_id: 'ses_child',
      request_id: 'child-p1',
      call_id: 'g1',
      tool: 'bash',
      title: 'Run make',
      patterns: [],
      reason: '',
      always: [],
      details: {},
      person_only: false
    })
  ];
}

function task(state: ChatState): ToolBlock {
  const cards = state.blocks.filter((b): b is ToolBlock => b.kind === 'tool');
  expect(cards).toHaveLength(1);
  return cards[0];
}

describe('a task call with its child agent', () => {
  it('nests the child blocks in the task card, keyed apart from the parent', () => {
    const state = new ChatState();
    for (const e of started()) {
      state.apply(e);
    }
    expect(state.blocks.map(b => b.kind)).toEqual(['user', 'tool']);
    const card = task(state);
    expect(card.child?.agent).toBe('explore');
    expect(card.child?.state.blocks.map(b => b.kind)).toEqual(['user', 'text', 'tool', 'permission']);
    const keys = new Set(state.blocks.map(b => b.key));
    expect(card.child?.state.blocks.some(b => keys.has(b.key))).toBe(false);
    expect(childOpen(card.child!)).toBe(true);
    expect(childLabel(card)).toBe('explore · find the parser · waiting for your answer');
    // the child's prompt waits at the top level too: answerable from the sidebar
    expect(state.pending().map(p => p.asked.request_id)).toEqual(['child-p1']);
  });

  it('marks a child prompt sent and redraws its card, then folds when the child is done', () => {
    const state = new ChatState();
    for (const e of started()) {
      state.apply(e);
    }
    const card = task(state);
    const rev = card.rev;
    expect(state.markSent('child-p1')?.sent).toBe(true);
    expect(card.rev).toBeGreaterThan(rev);
    state.apply(sub({ type: 'permission_replied', session_id: 'ses_child', request_id: 'child-p1', reply: 'once', feedback: '', by: 'user' }));
    expect(state.pending()).toEqual([]);
    state.apply(sub({ type: 'turn_finished', session_id: 'ses_child', turn_id: 'ct1', reason: 'stop', steps: 2, usage: USAGE, text: '' }));
    expect(childOpen(card.child!)).toBe(false);
    expect(childLabel(card)).toBe('explore · find the parser · 2 steps · done');
  });

  it('a reply the parent forwards unwrapped still reaches the child prompt', () => {
    const state = new ChatState();
    for (const e of started()) {
      state.apply(e);
    }
    const changed = state.apply({ session_id: 'ses_parent', type: 'permission_replied', request_id: 'child-p1', reply: 'reject', feedback: 'no', by: 'user' } as NbagentEvent);
    expect(changed.map(b => b.kind)).toEqual(['tool']);
    expect(state.pending()).toEqual([]);
  });

  it('stops the child when its task call is interrupted', () => {
    const state = new ChatState();
    for (const e of started().slice(0, 4)) {
      state.apply(e);
    }
    state.apply({ session_id: 'ses_parent', type: 'turn_finished', turn_id: 't1', reason: 'cancelled', steps: 1, usage: USAGE, text: '' } as NbagentEvent);
    const card = task(state);
    expect(card.status).toBe('error');
    expect(childOpen(card.child!)).toBe(false);
  });

  it('nests a grandchild inside the child', () => {
    const state = new ChatState();
    for (const e of started().slice(0, 3)) {
      state.apply(e);
    }
    state.apply(sub({ type: 'tool_running', session_id: 'ses_child', call_id: 'task2', tool: 'task', input: { description: 'dig' }, title: '' }));
    state.apply(sub({ type: 'subagent', session_id: 'ses_child', call_id: 'task2', agent: 'general', child_session_id: 'ses_g', event: { type: 'text_delta', session_id: 'ses_g', message_id: 'g', text: 'deep' } }));
    const inner = task(task(state).child!.state);
    expect(inner.child?.agent).toBe('general');
    expect(inner.child?.state.blocks.map(b => b.kind)).toEqual(['text']);
  });
});

describe('a recorded task call', () => {
  it('nests the child digest and final text in the task card, folded', async () => {
    const { recordEvents } = await import('../src/record');
    const record = {
      session_id: 'ses_1',
      turn_id: 'turn_1',
      prompt: 'where?',
      model: 'm',
      messages: [
        {
          id: 'm1',
          role: 'assistant',
          parts: [
            {
              type: 'tool',
              call_id: 'task1',
              tool: 'task',
              state: { status: 'completed', input: TASK_INPUT, output: 'In a.py\n\ntask_id: ses_child', title: 'explore: find the parser' }
            }
          ]
        }
      ],
      notes: [
        {
          kind: 'subagent',
          call_id: 'task1',
          agent: 'explore',
          session: 'ses_child',
          title: '2 steps',
          level: 'stop',
          message: 'It is parsed in a.py',
          steps: ['● grep def parse', '? permission: Run ```make```', '  → once']
        }
      ],
      reason: 'stop'
    };
    const state = new ChatState();
    for (const e of recordEvents(record)) {
      state.apply(e);
    }
    const card = task(state);
    expect(card.status).toBe('completed');
    const child = card.child!;
    expect(child.agent).toBe('explore');
    expect(childOpen(child)).toBe(false);
    expect(childLabel(card)).toBe('explore · find the parser · 2 steps · done');
    const texts = child.state.blocks.filter(b => b.kind === 'text').map(b => (b as { text: string }).text);
    expect(texts[0]).toBe('````text\n● grep def parse\n? permission: Run ```make```\n  → once\n````');
    expect(texts[1]).toBe('It is parsed in a.py');
    const user = child.state.blocks[0];
    expect(user.kind === 'user' && user.text).toBe('Where is X parsed?');
  });
});
