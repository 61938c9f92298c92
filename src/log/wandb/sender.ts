/**
 * The background uploader: one async loop per run that creates the run on the server, then
 * streams history lines and the summary over file_stream, paced like the Go client (at most one
 * request per transmit interval, an empty heartbeat when idle), retrying 429/5xx/network
 * failures with backoff for as long as the process lives. The training loop only ever calls
 * push() (an array append); everything slow happens here, off its path.
 *
 * Exactly-once: every line is sent at its file offset (line index), so a request that reached
 * the server but whose answer was lost is re-sent at the same offset and overwrites itself.
 */
import { WandbApi, WandbHttpError, type FileStreamRequest, type RunIdentity } from './api.ts';
import { wrapConfig } from './encode.ts';
import type { QueueState, RunQueue, RunRecord } from './queue.ts';
import { DEFAULT_BACKOFF, retryDelayMs, type BackoffPolicy } from './retry.ts';
import { runUrl } from './settings.ts';

export interface PacingOptions {
  /** At most one file_stream request per this many ms (Go client: 15 s). */
  transmitIntervalMs?: number;
  /** Send an empty request after this long without one, so the run shows as alive (30 s). */
  heartbeatMs?: number;
  backoff?: BackoffPolicy;
  /** Cap on the history bytes in one request (the server takes ~10 MiB). */
  maxRequestBytes?: number;
}

export interface SenderParts {
  api: WandbApi;
  queue: RunQueue;
  run: RunRecord;
  state: QueueState;
  config: Record<string, unknown>;
  appUrl: string;
  /** History lines not yet acknowledged; the first one sits at offset state.historyAcked. */
  unacked: string[];
  /** The summary text to send now (called when a request is built). */
  summaryText: () => string;
  /** Called before each request is built (the sink commits a row waiting for more values). */
  beforeSend?: () => void;
  report: (msg: string) => void;
}

export class FileStreamSender {
  private readonly pace: Required<PacingOptions>;
  private readonly abort = new AbortController();
  private lastSendAt = 0;
  private finishing = false;
  private stopped = false;
  private failing = false;
  private wake: (() => void) | null = null;
  private loopDone: Promise<void> | null = null;
  url: string | null = null;

  constructor(private readonly p: SenderParts, pacing: PacingOptions = {}) {
    this.pace = {
      transmitIntervalMs: pacing.transmitIntervalMs ?? 15_000,
      heartbeatMs: pacing.heartbeatMs ?? 30_000,
      backoff: pacing.backoff ?? DEFAULT_BACKOFF,
      maxRequestBytes: pacing.maxRequestBytes ?? 4 << 20,
    };
  }

  /** Lines not yet acknowledged by the server. */
  get pending(): number {
    return this.p.unacked.length;
  }

  start(): void {
    this.loopDone ??= this.loop();
  }

  /** Hot path: the line is already on disk; queue it for the next request. */
  push(line: string): void {
    this.p.unacked.push(line);
  }

  /**
   * Send what is left plus `complete`, waiting at most timeoutMs. Returns false when the
   * server could not take everything in time (the lines stay on disk for `hilo wandb sync`).
   */
  async finish(timeoutMs: number): Promise<boolean> {
    this.finishing = true;
    this.start();
    this.wake?.();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
    const outcome = await Promise.race([this.loopDone!.then(() => 'done' as const), timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.stopped = true;
      this.abort.abort(new Error('finish timeout'));
      await this.loopDone!.catch(() => {});
    }
    await this.p.api.close();
    return this.drained();
  }

  /** Everything on disk is on the server, including `complete` for a run that ended. */
  private drained(): boolean {
    const s = this.p.state;
    return this.pending === 0 && this.p.summaryText() === s.summaryAcked && (s.exitCode === null || s.completeAcked);
  }

  private async loop(): Promise<void> {
    let attempt = 0;
    let started = false;
    while (!this.stopped) {
      try {
        if (!started) {
          await this.startRun();
          started = true;
        }
        if (this.finishing && this.drained()) return;
        const wait = this.msUntilDue();
        if (wait > 0) {
          // In slices of the transmit interval, so lines pushed during an idle wait go out soon.
          await this.sleep(Math.min(wait, this.pace.transmitIntervalMs || wait), true);
          continue;
        }
        this.p.beforeSend?.();
        const req = this.buildRequest();
        await this.p.api.fileStream(this.identity(), req.body, this.abort.signal);
        this.acknowledge(req);
        this.lastSendAt = Date.now();
        attempt = 0;
        if (this.failing) this.p.report('W&B: the server answers again; uploading the queued records.');
        this.failing = false;
      } catch (e) {
        if (this.stopped) return;
        if (!this.handleFailure(e)) return;
        const err = e as { serverWaitMs?: number | null };
        await this.sleep(retryDelayMs(attempt++, this.pace.backoff, err.serverWaitMs ?? null), false);
      }
    }
  }

  /** Viewer (when no entity is set), then UpsertBucket with the wrapped config; prints the run URL. */
  private async startRun(): Promise<void> {
    const { api, run, queue } = this.p;
    if (!run.entity) run.entity = await api.viewerEntity(this.abort.signal);
    const got = await api.upsertRun(
      { ...run, displayName: run.displayName, config: wrapConfig(this.p.config) },
      this.abort.signal,
    );
    run.entity = got.entity || run.entity;
    run.project = got.project;
    run.displayName = got.displayName;
    queue.writeRun(run);
    this.url = runUrl(this.p.appUrl, run.entity!, run.project, run.runId);
    this.p.report(`W&B: run ${run.displayName ?? run.runId} at ${this.url}`);
  }

  /** true: retry later; false: give up (the records stay on disk). */
  private handleFailure(e: unknown): boolean {
    const dir = this.p.queue.dir;
    if (e instanceof WandbHttpError && !e.retryable) {
      this.stopped = true;
      if (e.authRefused) {
        this.p.report(`W&B: the server refused the API key (HTTP ${e.status}); continuing with local logs only in ${dir}. ` +
          'Check WANDB_API_KEY (or ~/.netrc), then upload with `hilo wandb sync RUN_DIR`.');
      } else {
        this.p.report(`W&B: ${e.message}; uploads stopped, records kept in ${dir} (\`hilo wandb sync RUN_DIR\` to retry).`);
      }
      return false;
    }
    if (!(e as { retryable?: boolean }).retryable) {
      this.stopped = true;
      this.p.report(`W&B: unexpected error ${(e as Error).message}; uploads stopped, records kept in ${dir}.`);
      return false;
    }
    if (!this.failing) this.p.report(`W&B: ${(e as Error).message}; retrying with backoff, records wait in ${dir}.`);
    this.failing = true;
    return true;
  }

  private identity(): RunIdentity {
    return { entity: this.p.run.entity, project: this.p.run.project, runId: this.p.run.runId };
  }

  private msUntilDue(): number {
    if (this.finishing) return 0;
    const dirty = this.pending > 0 || this.p.summaryText() !== this.p.state.summaryAcked;
    return this.lastSendAt + (dirty ? this.pace.transmitIntervalMs : this.pace.heartbeatMs) - Date.now();
  }

  private buildRequest(): { body: FileStreamRequest; lines: number; summary: string | null; complete: boolean } {
    const body: FileStreamRequest = {};
    const files: NonNullable<FileStreamRequest['files']> = {};
    let lines = 0;
    let bytes = 0;
    for (const l of this.p.unacked) {
      if (lines > 0 && bytes + l.length > this.pace.maxRequestBytes) break;
      bytes += l.length;
      lines++;
    }
    if (lines > 0) files['wandb-history.jsonl'] = { offset: this.p.state.historyAcked, content: this.p.unacked.slice(0, lines) };
    const summary = this.p.summaryText();
    const sendSummary = summary !== this.p.state.summaryAcked;
    if (sendSummary) files['wandb-summary.json'] = { offset: 0, content: [summary] };
    if (lines > 0 || sendSummary) body.files = files;
    const exit = this.p.state.exitCode;
    const complete = this.finishing && exit !== null && lines === this.pending && !this.p.state.completeAcked;
    if (complete) Object.assign(body, { complete: true, exitcode: exit });
    return { body, lines, summary: sendSummary ? summary : null, complete };
  }

  private acknowledge(req: { lines: number; summary: string | null; complete: boolean }): void {
    const s = this.p.state;
    this.p.unacked.splice(0, req.lines);
    s.historyAcked += req.lines;
    if (req.summary !== null) s.summaryAcked = req.summary;
    if (req.complete) s.completeAcked = true;
    this.p.queue.writeState(s);
  }

  /**
   * Sleep, unref'd so a forgotten finish() does not keep the process up. finish() cuts a pacing
   * wait short, never a backoff: the server asked for that pause.
   */
  private sleep(ms: number, wakeable: boolean): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wake = null;
        resolve();
      };
      const t = setTimeout(done, ms);
      t.unref();
      if (wakeable) this.wake = done;
    });
  }
}
