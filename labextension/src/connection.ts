/**
 * The sidebar's link to the active notebook's kernel: a comm with target "nbagent".
 *
 * Follows kernel changes and restarts (the comm is opened again). Where the comm cannot open, a
 * probe (a silent user expression) tells "nbagent is not installed" from "not loaded", and registers
 * the target when `%load_ext nbagent` has run; when the user runs a cell later, the probe runs again.
 */
import type { ISessionContext } from '@jupyterlab/apputils';
import type { Kernel, KernelMessage } from '@jupyterlab/services';
import { Signal } from '@lumino/signaling';
import { FromKernel, PROBE_EXPRESSION, Probe, TARGET, ToKernel, readProbe } from './protocol';

export type LinkState =
  | 'no-notebook'
  | 'no-kernel'
  | 'connecting'
  | 'restarting'
  | 'not-installed'
  | 'not-loaded'
  | 'unsupported'
  | 'connected'
  | 'dead';

const HELLO_TIMEOUT_MS = 8000;

export class KernelLink {
  readonly message = new Signal<this, FromKernel>(this);
  readonly stateChanged = new Signal<this, LinkState>(this);
  state: LinkState = 'no-notebook';
  probe: Probe | null = null;
  private context: ISessionContext | null = null;
  private kernel: Kernel.IKernelConnection | null = null;
  private comm: Kernel.IComm | null = null;
  private generation = 0;
  private probing = false;
  private probeAgain = false;
  private ranCells = new Set<string>();
  private lost = false;

  constructor(private notebookPath: () => string) {}

  /** Follow this notebook's session context (null: no notebook). */
  bind(context: ISessionContext | null): void {
    if (context === this.context) {
      return;
    }
    if (this.context) {
      this.context.kernelChanged.disconnect(this.onKernelChanged, this);
      this.context.statusChanged.disconnect(this.onStatus, this);
      this.context.connectionStatusChanged.disconnect(this.onConnection, this);
    }
    this.context = context;
    this.closeComm();
    this.watchKernel(null);
    if (!context) {
      this.setState('no-notebook');
      return;
    }
    context.kernelChanged.connect(this.onKernelChanged, this);
    context.statusChanged.connect(this.onStatus, this);
    context.connectionStatusChanged.connect(this.onConnection, this);
    void this.connect();
  }

  send(data: ToKernel): boolean {
    if (!this.comm || this.comm.isDisposed || this.state !== 'connected') {
      return false;
    }
    this.comm.send(data as any);
    return true;
  }

  get connected(): boolean {
    return this.state === 'connected';
  }

  /** Run `%load_ext nbagent` in the kernel (silently), then connect. */
  async loadExtension(): Promise<void> {
    const kernel = this.kernel;
    if (!kernel) {
      return;
    }
    const future = kernel.requestExecute({ code: '%load_ext nbagent', silent: true, store_history: false });
    await future.done;
    await this.connect();
  }

  /** (Re)connect to the context's current kernel. */
  async connect(): Promise<void> {
    const generation = ++this.generation;
    this.closeComm();
    const context = this.context;
    if (!context) {
      this.setState('no-notebook');
      return;
    }
    this.setState('connecting');
    try {
      await context.ready;
    } catch {
      // a context that failed to start a kernel: handled below
    }
    if (generation !== this.generation) {
      return;
    }
    const kernel = context.session?.kernel ?? null;
    this.watchKernel(kernel);
    if (!kernel) {
      this.setState('no-kernel');
      return;
    }
    const opened = await this.openComm(kernel, generation);
    if (opened || generation !== this.generation) {
      return;
    }
    await this.runProbe(kernel, generation);
  }

  dispose(): void {
    this.bind(null);
    Signal.clearData(this);
  }

  private setState(state: LinkState): void {
    if (this.state !== state) {
      this.state = state;
      this.stateChanged.emit(state);
    }
  }

  private closeComm(): void {
    const comm = this.comm;
    this.comm = null;
    if (comm && !comm.isDisposed) {
      comm.onClose = () => undefined;
      try {
        comm.close();
      } catch {
        // the kernel is gone already
      }
    }
  }

  private watchKernel(kernel: Kernel.IKernelConnection | null): void {
    if (this.kernel === kernel) {
      return;
    }
    if (this.kernel) {
      this.kernel.iopubMessage.disconnect(this.onIOPub, this);
    }
    this.kernel = kernel;
    if (kernel) {
      kernel.iopubMessage.connect(this.onIOPub, this);
    }
  }

  /** Open the comm and wait for the kernel's first answer; false when the target is not there. */
  private openComm(kernel: Kernel.IKernelConnection, generation: number): Promise<boolean> {
    return new Promise<boolean>(resolve => {
      let settled = false;
      const settle = (ok: boolean) => {
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          resolve(ok);
        }
      };
      let comm: Kernel.IComm;
      try {
        comm = kernel.createComm(TARGET);
      } catch {
        resolve(false);
        return;
      }
      this.comm = comm;
      const timer = setTimeout(() => settle(false), HELLO_TIMEOUT_MS);
      comm.onMsg = (msg: KernelMessage.ICommMsgMsg) => {
        if (generation !== this.generation) {
          return;
        }
        if (!settled) {
          this.setState('connected');
          settle(true);
        }
        this.message.emit(msg.content.data as unknown as FromKernel);
      };
      comm.onClose = () => {
        if (this.comm === comm) {
          this.comm = null;
        }
        if (!settled) {
          settle(false);
        } else if (generation === this.generation && this.state === 'connected') {
          // the kernel side went away (unloaded, restarted): find out what is there now
          void this.runProbe(kernel, generation);
        }
      };
      try {
        comm.open({ type: 'hello', path: this.notebookPath() } as any);
      } catch {
        settle(false);
      }
    });
  }

  private async runProbe(kernel: Kernel.IKernelConnection, generation: number): Promise<void> {
    if (this.probing) {
      this.probeAgain = true;
      return;
    }
    this.probing = true;
    this.probeAgain = false;
    try {
      const future = kernel.requestExecute({
        code: '',
        silent: true,
        store_history: false,
        user_expressions: { nbagent: PROBE_EXPRESSION }
      });
      const reply = (await future.done) as KernelMessage.IExecuteReplyMsg;
      if (generation !== this.generation) {
        return;
      }
      const content = reply.content as any;
      if (content.status !== 'ok') {
        this.setState('unsupported');
        return;
      }
      const probe = readProbe(content.user_expressions?.nbagent);
      if (probe === 'not-installed') {
        this.probe = null;
        this.setState('not-installed');
        return;
      }
      if (probe === 'error') {
        this.setState('unsupported');
        return;
      }
      this.probe = probe;
      if (!probe.loaded || !probe.registered) {
        this.setState('not-loaded');
        return;
      }
      const opened = await this.openComm(kernel, generation);
      if (!opened && generation === this.generation) {
        this.setState('unsupported');
      }
    } catch {
      if (generation === this.generation) {
        this.setState(kernel.isDisposed ? 'dead' : 'unsupported');
      }
    } finally {
      this.probing = false;
      if (this.probeAgain && generation === this.generation && this.state !== 'connected') {
        this.probeAgain = false;
        void this.runProbe(kernel, generation);
      }
    }
  }

  /** The kernel's websocket was lost and is back (a restart from elsewhere, a network blip): the
   * comm may be gone with it, so link again. */
  private onConnection(_: ISessionContext, status: Kernel.ConnectionStatus): void {
    if (status === 'connecting' || status === 'disconnected') {
      if (this.state !== 'no-kernel' && this.state !== 'no-notebook') {
        this.lost = true;
      }
    } else if (status === 'connected' && this.lost) {
      this.lost = false;
      void this.connect();
    }
  }

  private onKernelChanged(): void {
    void this.connect();
  }

  private onStatus(_: ISessionContext, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting') {
      this.generation++;
      this.comm = null;
      this.setState('restarting');
    } else if (status === 'dead') {
      this.generation++;
      this.comm = null;
      this.setState('dead');
    } else if (status === 'idle' && (this.state === 'restarting' || this.state === 'dead')) {
      void this.connect();
    }
  }

  /** A cell ran while nbagent is not linked (perhaps `%load_ext nbagent`): once it has run, try the
   * comm again (registered at load time where the kernel does so), else probe. */
  private onIOPub(_: Kernel.IKernelConnection, msg: KernelMessage.IIOPubMessage): void {
    const linked = this.state === 'connected' || this.state === 'connecting' || this.state === 'restarting';
    const kind = msg.header.msg_type;
    if (kind === 'execute_input') {
      if (!linked && this.state !== 'no-notebook') {
        this.ranCells.add((msg.parent_header as any).msg_id);
      }
      return;
    }
    if (kind !== 'status' || (msg.content as any).execution_state !== 'idle') {
      return;
    }
    const parent = (msg.parent_header as any).msg_id;
    if (!this.ranCells.delete(parent) || linked) {
      return;
    }
    const kernel = this.kernel;
    if (kernel && this.state !== 'not-loaded') {
      void this.runProbe(kernel, this.generation);
    } else if (kernel) {
      const generation = this.generation;
      void this.openComm(kernel, generation).then(ok => {
        if (!ok && generation === this.generation) {
          void this.runProbe(kernel, generation);
        }
      });
    }
  }
}
