/**
 * The MIME renderer of a recorded turn (`application/vnd.nbagent.turn+json`, the output bundle of a
 * `%%agent` cell or a sidebar turn): the turn drawn with the sidebar's cards and stylesheet.
 *
 * The bundle's `text/html` carries inline styles, which JupyterLab's sanitizer drops from the outputs
 * of an untrusted notebook (any notebook just opened): diffs lost their box and font. This renderer
 * builds its DOM from the record's data (text as text, markdown sanitized as an untrusted cell's is),
 * so it is safe, and the turn looks the same whether the notebook is trusted or not. Elsewhere
 * (GitHub, nbviewer, nbconvert) the `text/html` fallback is shown.
 */
import type { IRenderMime } from '@jupyterlab/rendermime';
import { renderMarkdown } from '@jupyterlab/rendermime';
import { Widget } from '@lumino/widgets';
import { CardHost, el, renderBlock } from './cards';
import { TURN_MIME } from './protocol';
import { recordEvents } from './record';
import { ChatState, footerText } from './state';

export class TurnRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(private options: IRenderMime.IRendererOptions) {
    super();
    this.addClass('nba-turn');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const state = new ChatState();
    for (const event of recordEvents(model.data[this.options.mimeType])) {
      state.apply(event);
    }
    const pending: Promise<void>[] = [];
    const host: CardHost = {
      markdown: (_key, node, text) => {
        node.dataset.text = text;
        const box = el('div', 'nba-markdown jp-RenderedHTMLCommon jp-RenderedMarkdown');
        node.replaceChildren(box);
        pending.push(
          renderMarkdown({
            host: box,
            source: text,
            trusted: false, // the same trusted or not: what a model wrote is sanitized either way
            sanitizer: this.options.sanitizer,
            resolver: this.options.resolver,
            linkHandler: this.options.linkHandler,
            latexTypesetter: this.options.latexTypesetter,
            markdownParser: this.options.markdownParser ?? null,
            shouldTypeset: this.isAttached,
            translator: this.options.translator
          }).catch(() => {
            box.textContent = text;
          })
        );
      },
      reply: null
    };
    const nodes: HTMLElement[] = [];
    for (const block of state.blocks) {
      const node = el('div', `nba-block nba-${block.kind}`);
      node.dataset.key = block.key;
      renderBlock(block, node, host);
      nodes.push(node);
    }
    const footer = footerText(state.footer);
    if (footer) {
      nodes.push(el('div', 'nba-turn-footer', footer));
    }
    this.node.replaceChildren(...nodes);
    await Promise.all(pending);
  }
}

export const rendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [TURN_MIME],
  defaultRank: 10, // before text/html (50): the bundle's HTML is the fallback for other viewers
  createRenderer: options => new TurnRenderer(options)
};

const extension: IRenderMime.IExtension = {
  id: 'nbagent:turn-renderer',
  description: 'Renders the turns nbagent records in notebooks as the sidebar shows them.',
  rendererFactory,
  rank: 10,
  dataType: 'json'
};

export default extension;
