/**
 * A recorded turn (the `application/vnd.nbagent.turn+json` output of a `%%agent` cell or a sidebar
 * turn, see nbagent.store.notebook.TurnRecord) as the events a live turn would have produced, so that
 * the MIME renderer folds it with the sidebar's own view model (ChatState) and draws it with the same
 * cards. Pure: no JupyterLab imports.
 */
import type { NbagentEvent, TodoItem, Usage } from './generated/events';
import { diffCounts, patchFiles } from './state';

type Json = Record<string, unknown>;

const EMPTY_USAGE: Usage = {
  input_tokens: 0,
  output_tokens: 0,
  cache_read_tokens: 0,
  cache_write_tokens: 0,
  reasoning_tokens: 0,
  cost: null
};

function obj(value: unknown): Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : {};
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : value === undefined || value === null ? '' : String(value);
}

function num(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

function usageOf(value: unknown): Usage {
  const u = obj(value);
  return {
    input_tokens: num(u['input_tokens']),
    output_tokens: num(u['output_tokens']),
    cache_read_tokens: num(u['cache_read_tokens']),
    cache_write_tokens: num(u['cache_write_tokens']),
    reasoning_tokens: num(u['reasoning_tokens']),
    cost: typeof u['cost'] === 'number' ? u['cost'] : null
  };
}

/** The diff a completed tool call's metadata carries, with its counts (`apply_patch` keeps them per
 * file, `edit` and `notebook_edit` at the top; counted from the text when missing). */
export function diffOf(
  tool: string,
  input: Json,
  title: string,
  metadata: Json
): { path: string; diff: string; additions: number; deletions: number } | null {
  const diff = metadata['diff'];
  if (typeof diff !== 'string' || !diff) {
    return null;
  }
  const files = list(metadata['files']).map(obj);
  let additions = num(metadata['additions']);
  let deletions = num(metadata['deletions']);
  if (files.length && !additions && !deletions) {
    additions = files.reduce((n, f) => n + num(f['additions']), 0);
    deletions = files.reduce((n, f) => n + num(f['deletions']), 0);
  }
  if (!additions && !deletions) {
    ({ additions, deletions } = diffCounts(diff));
  }
  let path = str(input['file_path'] || input['notebook_path']);
  if (!path && files.length) {
    path = files.map(f => str(f['path'])).join(', ');
  }
  if (!path && tool === 'apply_patch') {
    path = patchFiles(str(input['patch'])).join(', ');
  }
  return { path: path || title || tool, diff, additions, deletions };
}

/** The events of one recorded turn, in order: the prompt, text, reasoning, tool calls (their diffs,
 * the plan), the permission prompts and notices recorded beside the messages, usage, the end. */
export function recordEvents(record: unknown): NbagentEvent[] {
  const r = obj(record);
  const session_id = str(r['session_id']);
  const turn_id = str(r['turn_id']) || 'turn';
  const model = str(r['model']);
  const events: NbagentEvent[] = [];
  const notes = list(r['notes']).map(obj);
  const byCall = new Map<string, Json[]>();
  const loose: Json[] = [];
  for (const note of notes) {
    const call = str(note['call_id']);
    if (call) {
      byCall.set(call, [...(byCall.get(call) ?? []), note]);
    } else {
      loose.push(note);
    }
  }
  let counter = 0;
  const prompts = new Map<string, string>(); // a task call's prompt: what its child was asked
  const addNote = (note: Json, call: string) => {
    if (note['kind'] === 'permission') {
      const request_id = `recorded-${++counter}`;
      events.push({
        session_id,
        type: 'permission_asked',
        request_id,
        call_id: call || null,
        tool: '',
        title: str(note['title']),
        patterns: [],
        reason: '',
        always: [],
        details: {},
        person_only: false
      } as NbagentEvent);
      const reply = str(note['reply']);
      if (reply === 'once' || reply === 'always' || reply === 'reject') {
        events.push({
          session_id,
          type: 'permission_replied',
          request_id,
          reply,
          feedback: str(note['feedback']),
          by: str(note['by']) || 'user'
        });
      }
    } else if (note['kind'] === 'subagent' && call) {
      events.push(...childEvents(session_id, call, note, prompts.get(call) ?? ''));
    } else if (note['kind'] === 'notice') {
      const level = str(note['level']);
      if (level === 'error') {
        events.push({ session_id, type: 'error', message: str(note['message']), hint: '', kind: '' } as NbagentEvent);
      } else {
        events.push({ session_id, type: 'notice', level: level === 'warning' ? 'warning' : 'info', message: str(note['message']) });
      }
    }
  };

  events.push({ session_id, type: 'turn_started', turn_id, prompt: str(r['prompt']), model } as NbagentEvent);
  let steps = 0;
  for (const message of list(r['messages']).map(obj)) {
    if (message['role'] !== 'assistant') {
      continue; // the prompt is the record's; later user messages are synthetic (tool images, reminders)
    }
    steps += 1;
    const message_id = str(message['id']) || `m${steps}`;
    for (const part of list(message['parts']).map(obj)) {
      const type = part['type'];
      if (type === 'text' && str(part['text'])) {
        events.push({ session_id, type: 'text_delta', message_id, text: str(part['text']) });
      } else if (type === 'reasoning' && str(part['text'])) {
        events.push({ session_id, type: 'reasoning_delta', message_id, text: str(part['text']) });
      } else if (type === 'tool') {
        const call_id = str(part['call_id']);
        const tool = str(part['tool']);
        const state = obj(part['state']);
        const input = obj(state['input']);
        const title = str(state['title']);
        events.push({ session_id, type: 'tool_running', call_id, tool, input, title } as NbagentEvent);
        prompts.set(call_id, str(input['prompt']));
        for (const note of byCall.get(call_id) ?? []) {
          addNote(note, call_id);
        }
        if (state['status'] === 'completed') {
          const diff = diffOf(tool, input, title, obj(state['metadata']));
          if (diff) {
            events.push({ session_id, type: 'diff', call_id, ...diff });
          }
          if (tool === 'todowrite' && Array.isArray(input['todos'])) {
            events.push({ session_id, type: 'todo_updated', todos: input['todos'] as TodoItem[] });
          }
          events.push({
            session_id,
            type: 'tool_completed',
            call_id,
            tool,
            input,
            output: str(state['output']),
            title,
            metadata: obj(state['metadata']),
            attachments: []
          } as NbagentEvent);
        } else if (state['status'] === 'error') {
          events.push({ session_id, type: 'tool_error', call_id, tool, input, error: str(state['error']) } as NbagentEvent);
        }
      }
    }
  }
  for (const note of loose) {
    addNote(note, '');
  }
  const usage = r['usage'] ? usageOf(r['usage']) : EMPTY_USAGE;
  events.push({
    session_id,
    type: 'usage',
    step: steps,
    model,
    usage,
    total: usage,
    context_tokens: num(r['context_tokens']),
    context_limit: num(r['context_limit'])
  } as NbagentEvent);
  const reason = str(r['reason']);
  events.push({
    session_id,
    type: 'turn_finished',
    turn_id,
    reason: ['stop', 'step_limit', 'cancelled', 'error'].includes(reason) ? reason : 'stop',
    steps,
    usage,
    text: ''
  } as NbagentEvent);
  return events;
}

/** A recorded `task` call's child (a `subagent` note: its agent, final text and a digest of its steps)
 * as the events its live run forwarded, so the card nests it the same way, folded (it is done). */
export function childEvents(session_id: string, call_id: string, note: Json, prompt: string): NbagentEvent[] {
  const child = str(note['session']) || `${call_id}-child`;
  const agent = str(note['agent']) || 'agent';
  const wrap = (event: Json): NbagentEvent =>
    ({ session_id, type: 'subagent', call_id, agent, child_session_id: child, event: { session_id: child, ...event } }) as NbagentEvent;
  const out: NbagentEvent[] = [wrap({ type: 'turn_started', turn_id: `${child}-turn`, prompt, model: '' })];
  const steps = list(note['steps']).map(str);
  if (steps.length) {
    // a fenced block longer than any run of backticks in the steps: they stay text
    const body = steps.join('\n');
    const fence = '`'.repeat(Math.max(3, ...(body.match(/`+/g) ?? []).map(r => r.length + 1)));
    out.push(wrap({ type: 'text_delta', message_id: `${child}-steps`, text: `${fence}text\n${body}\n${fence}` }));
  }
  const text = str(note['message']);
  if (text) {
    out.push(wrap({ type: 'text_delta', message_id: `${child}-final`, text }));
  }
  const reason = str(note['level']);
  const steps_n = parseInt(str(note['title']), 10);
  out.push(
    wrap({
      type: 'turn_finished',
      turn_id: `${child}-turn`,
      reason: ['stop', 'step_limit', 'cancelled', 'error'].includes(reason) ? reason : 'stop',
      steps: Number.isFinite(steps_n) ? steps_n : 0,
      usage: EMPTY_USAGE,
      text
    })
  );
  return out;
}
