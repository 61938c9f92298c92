/**
 * `hilo wandb sync RUN_DIR`: upload a run folder's queued W&B records (an offline run, or an
 * online run whose server was unreachable). It asks the server how many history lines it already
 * has (RunResumeStatus) and sends only the rest, at their own offsets, so syncing twice, or
 * after a partial upload, never duplicates a line.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { HiloError } from '../../errors.ts';
import { WandbApi, WandbHttpError, WandbNetworkError } from './api.ts';
import { fromWandbJson, toWandbJson } from './encode.ts';
import { queueDirFor, RunQueue, summaryFrom } from './queue.ts';
import { callWithRetries, DEFAULT_BACKOFF } from './retry.ts';
import { FileStreamSender, type PacingOptions } from './sender.ts';
import { resolveWandbSettings, runUrl, type Env } from './settings.ts';

export interface SyncOptions extends PacingOptions {
  env?: Env;
  home?: string;
  log?: (msg: string) => void;
  /** Give up (leaving the rest for another sync) after this long. */
  timeoutMs?: number;
  requestTimeoutMs?: number;
}

export interface SyncResult {
  url: string;
  /** History lines sent by this sync. */
  sent: number;
  upToDate: boolean;
}

/** The queue folder for a path: a run folder (holding wandb/ or, with WANDB_DIR, its queue there) or the queue itself. */
export function findQueue(path: string, env: Env = process.env): RunQueue {
  const candidates = [path, join(path, 'wandb')];
  if (env.WANDB_DIR) candidates.push(queueDirFor({ dir: env.WANDB_DIR }, path));
  for (const dir of candidates) {
    if (existsSync(join(dir, 'run.json'))) return new RunQueue(dir);
  }
  throw new HiloError(`wandb sync: ${JSON.stringify(path)} holds no W&B records (no run.json in it or in its wandb/ folder)`);
}

export async function syncRun(path: string, opts: SyncOptions = {}): Promise<SyncResult> {
  const env = opts.env ?? process.env;
  const report = opts.log ?? ((m: string) => process.stdout.write(m + '\n'));
  const queue = findQueue(path, env);
  const run = queue.readRun()!;
  // Only the connection comes from the environment; who the run is was fixed when it ran.
  const settings = resolveWandbSettings({ mode: 'online' }, { ...env, WANDB_MODE: 'online' }, opts.home);
  const api = new WandbApi(settings.baseUrl, settings.apiKey!, opts.requestTimeoutMs);
  const backoff = opts.backoff ?? DEFAULT_BACKOFF;
  const history = queue.readHistory();
  const state = queue.readState();
  const explicit = queue.readSummary();
  const summaryText = () => toWandbJson(summaryFrom(history, explicit));

  const timeoutMs = opts.timeoutMs ?? 10 * 60_000;
  const deadline = AbortSignal.timeout(timeoutMs);
  const deadlineAt = Date.now() + timeoutMs;
  try {
    run.entity ??= settings.entity ?? (await callWithRetries(() => api.viewerEntity(deadline), backoff, deadline));
    const status = await callWithRetries(() => api.resumeStatus(run, deadline), backoff, deadline);
    const onServer = Math.min(status?.historyLineCount ?? 0, history.length);
    const summaryThere = status?.summaryMetrics != null && summaryOnServer(status.summaryMetrics, summaryText());
    const url = runUrl(settings.appUrl, run.entity, run.project, run.runId);
    if (status && onServer === history.length && summaryThere && (state.exitCode === null || state.completeAcked)) {
      report(`W&B: ${url} is up to date (${history.length} history lines); nothing to send.`);
      await api.close();
      return { url, sent: 0, upToDate: true };
    }
    // What the server holds is the truth; re-sending from there is idempotent (offsets).
    state.historyAcked = onServer;
    if (summaryThere) state.summaryAcked = summaryText();
    else state.summaryAcked = null;
    if (!status) state.completeAcked = false;
    const sender = new FileStreamSender(
      { api, queue, run, state, config: queue.readConfig(), appUrl: settings.appUrl, unacked: history.slice(onServer), summaryText, report },
      { ...opts, transmitIntervalMs: opts.transmitIntervalMs ?? 0 },
    );
    const done = await sender.finish(Math.max(0, deadlineAt - Date.now()));
    const sent = history.length - onServer - sender.pending;
    if (!done) throw new HiloError(`wandb sync: sent ${sent} of ${history.length - onServer} history lines; the server did not take the rest, run the sync again`);
    report(`W&B: sent ${sent} history lines (the server had ${onServer}): ${url}`);
    return { url, sent, upToDate: false };
  } catch (e) {
    await api.close().catch(() => {});
    if (e instanceof HiloError) throw e;
    if (e instanceof WandbHttpError && e.authRefused) {
      throw new HiloError(`wandb sync: the server refused the API key (HTTP ${e.status}); check WANDB_API_KEY or ~/.netrc (machine ${new URL(settings.baseUrl).host})`);
    }
    if (e instanceof WandbHttpError || e instanceof WandbNetworkError) throw new HiloError(`wandb sync: ${e.message}`);
    if (deadline.aborted) throw new HiloError(`wandb sync: ${settings.baseUrl} did not answer within the timeout; nothing was sent, run the sync again`);
    throw e;
  }
}

/** Every local summary key holds the same value on the server (which may add its own, e.g. `_wandb`). */
function summaryOnServer(server: string, local: string): boolean {
  try {
    const there = fromWandbJson(server) as Record<string, unknown>;
    return Object.entries(fromWandbJson(local) as Record<string, unknown>).every(([k, v]) => JSON.stringify(there[k]) === JSON.stringify(v));
  } catch {
    return false;
  }
}
