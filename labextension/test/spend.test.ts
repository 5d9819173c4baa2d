import { describe, expect, it } from 'vitest';
import type { NbagentEvent } from '../src/generated/events';
import { ChatState, footerText } from '../src/state';

const S = { session_id: 'ses_1' };
const zero = { input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0, reasoning_tokens: 0, cost: null };
const step = (input: number, output: number, cost: number | null) => ({ ...zero, input_tokens: input, output_tokens: output, cost });

describe('live cost, model switches and budgets in the sidebar', () => {
  it('shows the session cost and the running turn cost after each step', () => {
    const state = new ChatState();
    state.apply({ ...S, type: 'turn_started', turn_id: 't1', prompt: 'go', model: 'anthropic/claude-sonnet-4-5' });
    state.apply({
      ...S,
      type: 'usage',
      step: 1,
      model: 'anthropic/claude-sonnet-4-5',
      usage: step(1000, 100, 0.5),
      total: step(6000, 600, 1.5),
      context_tokens: 0,
      context_limit: 0
    });
    expect(footerText(state.footer)).toBe('anthropic/claude-sonnet-4-5 · 6,000 in / 600 out · $1.5000 · turn $0.5000');
    state.apply({
      ...S,
      type: 'model_switched',
      from_model: 'anthropic/claude-sonnet-4-5',
      to_model: 'openai/gpt-5',
      reason: 'failover',
      message: 'anthropic/claude-sonnet-4-5: usage limit hit; continuing on openai/gpt-5'
    });
    state.apply({
      ...S,
      type: 'usage',
      step: 2,
      model: 'openai/gpt-5',
      usage: step(1000, 100, 0.25),
      total: step(7000, 700, 1.75),
      context_tokens: 0,
      context_limit: 0
    });
    expect(footerText(state.footer)).toBe('openai/gpt-5 · 7,000 in / 700 out · $1.7500 · turn $0.7500');
    state.apply({
      ...S,
      type: 'budget',
      level: 'stop',
      budget: 'session_cost',
      spent: 1.75,
      limit: 1.5,
      message: 'Stopped: the session cost budget is reached.'
    });
    state.apply({ ...S, type: 'turn_finished', turn_id: 't1', reason: 'stop', steps: 2, usage: step(2000, 200, 0.75), text: '' });
    expect(footerText(state.footer)).toBe(
      'openai/gpt-5 · 7,000 in / 700 out · $1.7500 · turn $0.7500 · stopped: session cost budget reached'
    );
    const notices = state.blocks.filter(b => b.kind === 'notice');
    expect(notices.map(n => n.kind === 'notice' && [n.level, n.icon, n.message])).toEqual([
      ['warning', '⇄', 'anthropic/claude-sonnet-4-5: usage limit hit; continuing on openai/gpt-5'],
      ['stop', '■', 'Stopped: the session cost budget is reached.']
    ]);
    // The next turn starts without the stop and without the last turn's cost.
    state.apply({ ...S, type: 'turn_started', turn_id: 't2', prompt: 'more', model: 'openai/gpt-5' });
    expect(footerText(state.footer)).toBe('openai/gpt-5 · 7,000 in / 700 out · $1.7500');
  });

  it('renders a budget warning and a user switch as notices', () => {
    const state = new ChatState();
    const events: NbagentEvent[] = [
      { ...S, type: 'budget', level: 'warning', budget: 'daily_tokens', spent: 850, limit: 1000, message: '85% of the daily token budget used' },
      { ...S, type: 'model_switched', from_model: 'a/x', to_model: 'b/y', reason: 'user', message: 'Now on b/y.' }
    ];
    for (const e of events) {
      state.apply(e);
    }
    expect(state.blocks.map(b => b.kind === 'notice' && `${b.level}:${b.message}`)).toEqual([
      'warning:85% of the daily token budget used',
      'info:Now on b/y.'
    ]);
    expect(state.footer.model).toBe('b/y');
    expect(state.footer.budget).toBe('');
  });

  it('keeps the cost unknown when no step has a price', () => {
    const state = new ChatState();
    state.apply({ ...S, type: 'turn_started', turn_id: 't1', prompt: 'go', model: 'openai/local' });
    state.apply({ ...S, type: 'usage', step: 1, model: 'openai/local', usage: step(10, 2, null), total: step(10, 2, null), context_tokens: 0, context_limit: 0 });
    expect(footerText(state.footer)).toBe('openai/local · 10 in / 2 out · cost unknown');
    expect(state.footer.turn?.cost).toBeNull();
  });
});
