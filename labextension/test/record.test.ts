import { describe, expect, it } from 'vitest';
import { recordEvents } from '../src/record';
import { ChatState, diffCounts, patchFiles, summarizeInput, titleExtra } from '../src/state';

const PATCH = '*** Begin Patch\n*** Update File: wordcount/cli.py\n@@\n-a\n+b\n*** Add File: docs/x.md\n+hi\n*** End Patch';
const DIFF = '--- a/wordcount/cli.py\n+++ b/wordcount/cli.py\n@@ -1 +1 @@\n-a\n+b\n--- /dev/null\n+++ b/docs/x.md\n@@ -0,0 +1 @@\n+hi\n';

const record = {
  session_id: 'ses_1',
  turn_id: 'turn_1',
  prompt: 'patch it',
  model: 'openai/x',
  messages: [
    { id: 'u1', role: 'user', parts: [{ type: 'text', text: 'patch it' }] },
    {
      id: 'm1',
      role: 'assistant',
      parts: [
        { type: 'text', text: 'Patching.' },
        {
          type: 'tool',
          call_id: 'c1',
          tool: 'apply_patch',
          state: {
            status: 'completed',
            input: { patch: PATCH },
            output: 'Applied',
            title: 'wordcount/cli.py, docs/x.md',
            metadata: {
              diff: DIFF,
              files: [
                { path: 'wordcount/cli.py', additions: 1, deletions: 1 },
                { path: 'docs/x.md', additions: 1, deletions: 0 }
              ]
            }
          }
        }
      ]
    }
  ],
  notes: [
    { kind: 'permission', call_id: 'c1', title: 'Apply patch to wordcount/cli.py', reply: 'reject', feedback: 'no' },
    { kind: 'notice', level: 'warning', message: 'interrupted' }
  ],
  usage: { input_tokens: 10, output_tokens: 2 },
  reason: 'cancelled'
};

describe('recordEvents', () => {
  it('folds a recorded turn into the sidebar blocks: prompt, text, the tool with its diff, the answered prompt, notices', () => {
    const state = new ChatState();
    for (const e of recordEvents(record)) {
      state.apply(e);
    }
    expect(state.blocks.map(b => b.kind)).toEqual(['user', 'text', 'tool', 'permission', 'notice']);
    const tool = state.blocks[2];
    expect(tool.kind === 'tool' && tool.status).toBe('completed');
    const diff = tool.kind === 'tool' ? tool.diffs[0] : null;
    expect([diff?.additions, diff?.deletions]).toEqual([2, 1]); // the per-file counts, summed
    const ask = state.blocks[3];
    expect(ask.kind === 'permission' && ask.replied?.reply).toBe('reject');
    expect(ask.kind === 'permission' && ask.replied?.feedback).toBe('no');
    expect(state.footer.total?.input_tokens).toBe(10);
    expect(state.running).toBe(false);
  });

  it('does not fail on a record missing fields', () => {
    const state = new ChatState();
    for (const e of recordEvents({ messages: [{ role: 'assistant', parts: [{ type: 'tool' }] }] })) {
      state.apply(e);
    }
    expect(state.blocks[0].kind).toBe('user');
  });
});

describe('tool headers', () => {
  it('titles an apply_patch call with the files it touches, not its JSON', () => {
    expect(patchFiles(PATCH)).toEqual(['wordcount/cli.py', 'docs/x.md']);
    expect(summarizeInput('apply_patch', { patch: PATCH })).toBe('wordcount/cli.py, docs/x.md');
  });

  it('says a path once', () => {
    expect(titleExtra('wordcount/cli.py', 'wordcount/cli.py')).toBe('');
    expect(titleExtra('/work/wordcount/cli.py', 'wordcount/cli.py')).toBe('');
    expect(titleExtra('a.py', 'a.py (lines 1-40)')).toBe('lines 1-40');
    expect(titleExtra('make', 'exit 1')).toBe('exit 1');
  });

  it('counts a diff without its file headers', () => {
    expect(diffCounts(DIFF)).toEqual({ additions: 2, deletions: 1 });
  });
});
