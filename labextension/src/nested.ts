/**
 * A `task` call's child agent as the cards show it: the label of its nested block and whether the
 * block is open (while the child runs or asks). Pure: no JupyterLab imports.
 */
import type { ChildRun, ToolBlock } from './state';

/** `explore · find the parser · 2 steps · done`: the agent, what it was asked, how far it got. */
export function childLabel(tool: ToolBlock): string {
  const run = tool.child;
  if (!run) {
    return '';
  }
  const footer = run.state.footer;
  const parts = [run.agent];
  const description = tool.input['description'];
  if (typeof description === 'string' && description.trim()) {
    parts.push(description.trim().slice(0, 80));
  }
  if (footer.steps) {
    parts.push(`${footer.steps} step${footer.steps === 1 ? '' : 's'}`);
  }
  if (run.state.pending().length) {
    parts.push('waiting for your answer');
  } else if (footer.running) {
    parts.push('running…');
  } else {
    parts.push(footer.reason && footer.reason !== 'stop' ? footer.reason : 'done');
  }
  return parts.join(' · ');
}

/** Shown unfolded: while the child runs or one of its prompts waits. */
export function childOpen(run: ChildRun): boolean {
  return run.state.footer.running || run.state.pending().length > 0;
}
