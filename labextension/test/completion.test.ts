import { describe, expect, it } from 'vitest';
import {
  ATTACH_CHARS,
  InputHistory,
  STATIC_COMMANDS,
  applyCompletion,
  mentionAt,
  mentionCompletions,
  mentionFolder,
  parseMentions,
  slashCompletions,
  withAttachments
} from '../src/completion';
import { readProbe } from '../src/protocol';
import { turnCellsOf } from '../src/chat';

describe('slash completion', () => {
  it('completes the command being typed, custom ones included', () => {
    const commands = [...STATIC_COMMANDS, { name: 'review', description: 'review the diff', custom: true }];
    expect(slashCompletions('/co', 3, commands).map(c => c.label)).toEqual(['/compact', '/context', '/cost']);
    expect(slashCompletions('/re', 3, commands).map(c => c.label)).toEqual(['/redo', '/review']);
    expect(slashCompletions('/', 1, commands).length).toBe(commands.length);
  });

  it('stops after the command word and outside a command', () => {
    expect(slashCompletions('/model gpt', 10, STATIC_COMMANDS)).toEqual([]);
    expect(slashCompletions('fix /co', 7, STATIC_COMMANDS)).toEqual([]);
  });

  it('replaces the typed word', () => {
    const [c] = slashCompletions('/mo', 3, STATIC_COMMANDS);
    expect(applyCompletion('/mo', c)).toEqual({ text: '/model ', caret: 7 });
  });
});

describe('@mentions', () => {
  it('finds the mention at the caret', () => {
    expect(mentionAt('read @src/ma', 12)).toEqual({ start: 5, end: 12, query: 'src/ma' });
    expect(mentionAt('mail me@example.com', 19)).toBeNull();
    expect(mentionAt('@a b', 4)).toBeNull();
    expect(mentionAt('@', 1)).toEqual({ start: 0, end: 1, query: '' });
  });

  it('parses every mention once, without trailing punctuation', () => {
    expect(parseMentions('compare @a.py and @lib/b.py, then @a.py.')).toEqual(['a.py', 'lib/b.py']);
    expect(parseMentions('email x@y.z')).toEqual([]);
  });

  it('completes from the folder listing, folders first, hidden files left out', () => {
    const token = mentionAt('see @src/m', 10)!;
    expect(mentionFolder(token.query)).toBe('src');
    const items = mentionCompletions(token, [
      { name: 'main.py', type: 'file' },
      { name: 'models', type: 'directory' },
      { name: '.mypy_cache', type: 'directory' },
      { name: 'util.py', type: 'file' }
    ]);
    expect(items.map(i => i.label)).toEqual(['@src/models/', '@src/main.py']);
    expect(applyCompletion('see @src/m', items[1]).text).toBe('see @src/main.py ');
  });

  it('attaches the files to the prompt, bounded', () => {
    const text = withAttachments('fix @a.py', [
      { path: 'a.py', content: 'x = 1\n' },
      { path: 'b.bin', content: null },
      { path: 'big.txt', content: 'y'.repeat(ATTACH_CHARS + 10) }
    ]);
    expect(text.startsWith('fix @a.py\n\nAttached file `a.py`:\n```\nx = 1\n')).toBe(true);
    expect(text).toContain('Attached file: `b.bin` (read it with the read tool).');
    expect(text).toContain(`(first 20,000 of ${(ATTACH_CHARS + 10).toLocaleString('en-US')} characters)`);
    expect(withAttachments('plain', [])).toBe('plain');
  });
});

describe('InputHistory', () => {
  it('walks back and forth and keeps the draft', () => {
    const h = new InputHistory();
    h.push('one');
    h.push('two');
    h.push('two');
    expect(h.entries).toEqual(['one', 'two']);
    expect(h.up('draft')).toBe('two');
    expect(h.up('two')).toBe('one');
    expect(h.up('one')).toBeNull();
    expect(h.down()).toBe('two');
    expect(h.down()).toBe('draft');
    expect(h.down()).toBeNull();
  });
});

describe('protocol', () => {
  it('reads the probe from a user expression', () => {
    const probe = { version: '0.1.0', loaded: true, registered: true, protocol: 1 };
    expect(readProbe({ status: 'ok', data: { 'application/json': probe, 'text/plain': '{}' } })).toEqual(probe);
    expect(readProbe({ status: 'ok', data: { 'text/plain': JSON.stringify(probe) } })).toEqual(probe);
    expect(readProbe({ status: 'error', ename: 'ModuleNotFoundError' })).toBe('not-installed');
    expect(readProbe({ status: 'error', ename: 'NameError' })).toBe('error');
    expect(readProbe(undefined)).toBe('error');
  });

  it('keeps only the cells with turn records, reduced', () => {
    const mime = 'application/vnd.nbagent.turn+json';
    const cells = turnCellsOf([
      { cell_type: 'markdown', source: 'x' },
      { cell_type: 'code', id: 'a', source: ['%%agent\n', 'hi'], outputs: [{ output_type: 'stream', text: 'x' }] },
      {
        cell_type: 'code',
        id: 'b',
        source: '%%agent\nhi',
        outputs: [{ output_type: 'display_data', data: { 'text/html': '<b>big</b>', [mime]: { turn_id: 't' } } }]
      }
    ]);
    expect(cells).toEqual([
      { cell_type: 'code', id: 'b', source: '%%agent\nhi', outputs: [{ output_type: 'display_data', data: { [mime]: { turn_id: 't' } } }] }
    ]);
  });
});
