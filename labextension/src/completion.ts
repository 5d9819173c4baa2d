/**
 * The input box's helpers: `/` command completion, `@file` mentions, prompt history.
 * Pure (no JupyterLab imports): unit-tested as is.
 */

export interface CommandInfo {
  name: string;
  description: string;
  custom?: boolean;
}

export interface Completion {
  label: string; // shown
  insert: string; // replaces [start, end) of the input
  detail: string;
  start: number;
  end: number;
}

/** Commands every kernel has, shown before the kernel told us its own list (custom commands). */
export const STATIC_COMMANDS: CommandInfo[] = [
  { name: 'help', description: 'the commands' },
  { name: 'model', description: 'show or switch the model' },
  { name: 'context', description: 'what the next request is made of' },
  { name: 'compact', description: 'summarise the older history now' },
  { name: 'cost', description: 'tokens and cost of this session' },
  { name: 'sessions', description: 'the sessions of this notebook' },
  { name: 'new', description: 'start a new session' },
  { name: 'undo', description: "revert the last turn's file changes" },
  { name: 'redo', description: 'put them back' },
  { name: 'permissions', description: 'show the permission mode and rules, or switch mode' },
  { name: 'init', description: 'write a starter AGENTS.md' }
];

/** Completions for a `/command` being typed as the first word of the input. */
export function slashCompletions(text: string, caret: number, commands: CommandInfo[]): Completion[] {
  if (!text.startsWith('/')) {
    return [];
  }
  const space = text.search(/\s/);
  const end = space < 0 ? text.length : space;
  if (caret > end) {
    return [];
  }
  const typed = text.slice(1, end).toLowerCase();
  const seen = new Set<string>();
  const out: Completion[] = [];
  for (const c of commands) {
    if (seen.has(c.name) || !c.name.toLowerCase().startsWith(typed)) {
      continue;
    }
    seen.add(c.name);
    out.push({ label: `/${c.name}`, insert: `/${c.name} `, detail: c.description, start: 0, end });
  }
  return out.sort((a, b) => a.label.localeCompare(b.label));
}

export interface MentionToken {
  start: number; // index of the "@"
  end: number;
  query: string; // what follows the "@"
}

const MENTION = /(^|\s)@([^\s@]*)$/;

/** The `@path` being typed at the caret, if any. */
export function mentionAt(text: string, caret: number): MentionToken | null {
  const before = text.slice(0, caret);
  const match = MENTION.exec(before);
  if (!match) {
    return null;
  }
  const start = caret - match[2].length - 1;
  let end = caret;
  while (end < text.length && !/\s/.test(text[end])) {
    end += 1;
  }
  return { start, end, query: match[2] };
}

/** Every `@path` mentioned in a prompt (in order, once each). */
export function parseMentions(text: string): string[] {
  const out: string[] = [];
  const re = /(^|\s)@([^\s@]+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    const path = m[2].replace(/[.,;:!?)]+$/, '');
    if (path && !out.includes(path)) {
      out.push(path);
    }
  }
  return out;
}

/** Completions for an `@path`: entries of the folder typed so far, filtered by the name's prefix. */
export function mentionCompletions(
  token: MentionToken,
  entries: { name: string; type: string }[]
): Completion[] {
  const slash = token.query.lastIndexOf('/');
  const folder = slash >= 0 ? token.query.slice(0, slash + 1) : '';
  const prefix = token.query.slice(slash + 1).toLowerCase();
  return entries
    .filter(e => e.name.toLowerCase().startsWith(prefix) && !e.name.startsWith('.'))
    .sort((a, b) => Number(b.type === 'directory') - Number(a.type === 'directory') || a.name.localeCompare(b.name))
    .slice(0, 50)
    .map(e => {
      const dir = e.type === 'directory';
      const path = `${folder}${e.name}${dir ? '/' : ''}`;
      return {
        label: `@${path}`,
        insert: `@${path}${dir ? '' : ' '}`,
        detail: dir ? 'folder' : e.type,
        start: token.start,
        end: token.end
      };
    });
}

/** The folder part of a mention query ("" for the notebook's folder). */
export function mentionFolder(query: string): string {
  const slash = query.lastIndexOf('/');
  return slash >= 0 ? query.slice(0, slash) : '';
}

export function applyCompletion(text: string, c: Completion): { text: string; caret: number } {
  const next = text.slice(0, c.start) + c.insert + text.slice(c.end);
  return { text: next, caret: c.start + c.insert.length };
}

export interface AttachedFile {
  path: string;
  content: string | null; // null: not readable as text (the agent gets the path only)
}

export const ATTACH_CHARS = 20000;

/** The prompt sent to the agent: the text, then each mentioned file's path and (bounded) content. */
export function withAttachments(text: string, files: AttachedFile[]): string {
  if (!files.length) {
    return text;
  }
  const parts = [text.trim()];
  for (const f of files) {
    if (f.content === null) {
      parts.push(`Attached file: \`${f.path}\` (read it with the read tool).`);
      continue;
    }
    let body = f.content;
    let note = '';
    if (body.length > ATTACH_CHARS) {
      note = ` (first ${ATTACH_CHARS.toLocaleString('en-US')} of ${body.length.toLocaleString('en-US')} characters)`;
      body = body.slice(0, ATTACH_CHARS);
    }
    const fence = body.includes('```') ? '~~~~' : '```';
    parts.push(`Attached file \`${f.path}\`${note}:\n${fence}\n${body}\n${fence}`);
  }
  return parts.join('\n\n');
}

/** Prompt history, walked with Up/Down like a shell's. */
export class InputHistory {
  private items: string[] = [];
  private index = 0;
  private draft = '';

  constructor(private limit = 200) {}

  push(text: string): void {
    const t = text.trim();
    if (t && this.items[this.items.length - 1] !== t) {
      this.items.push(t);
      if (this.items.length > this.limit) {
        this.items.shift();
      }
    }
    this.index = this.items.length;
    this.draft = '';
  }

  /** The previous entry (Up); `current` is kept as the draft when leaving the end. */
  up(current: string): string | null {
    if (this.index === 0) {
      return null;
    }
    if (this.index === this.items.length) {
      this.draft = current;
    }
    this.index -= 1;
    return this.items[this.index];
  }

  /** The next entry (Down), and the draft after the last one. */
  down(): string | null {
    if (this.index >= this.items.length) {
      return null;
    }
    this.index += 1;
    return this.index === this.items.length ? this.draft : this.items[this.index];
  }

  get entries(): readonly string[] {
    return this.items;
  }

  load(items: string[]): void {
    this.items = items.slice(-this.limit);
    this.index = this.items.length;
  }
}
