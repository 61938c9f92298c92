/**
 * W&B logging for the training loop: `createWandb(settings, runDir, {config, log})` returns a
 * MetricSink whose log()/summary() only append in memory and to the run folder's queue (see
 * queue.ts); uploads run in the background (sender.ts) and never hold the loop up. finish()
 * waits, bounded, for the last upload. Offline runs write the same records and send nothing;
 * `hilo wandb sync RUN_DIR` uploads them later. Re-opening a run folder continues its run.
 */
import { existsSync, renameSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { WandbApi } from './api.ts';
import { encodeMetric, fromWandbJson, historyRow, toWandbJson } from './encode.ts';
import { queueDirFor, RunQueue, summaryFrom, type RunRecord } from './queue.ts';
import { FileStreamSender, type PacingOptions } from './sender.ts';
import { newRunId, runUrl, type WandbSettings } from './settings.ts';

export { resolveWandbSettings, type WandbSettings, type WandbRecipeSection } from './settings.ts';
export type { Histogram, Table } from './encode.ts';
export { queueDirFor } from './queue.ts';

export interface MetricSink {
  /** Record metrics at a training step; calls at the same step merge into one row. Never throws. */
  log(step: number, metrics: Record<string, number | string | object>): void;
  /** Values for the run summary (they win over the last history values). */
  summary(values: Record<string, unknown>): void;
  /** Flush and mark the run finished with this exit code; waits at most `finishTimeoutMs`. */
  finish(exitCode?: number): Promise<void>;
  /** The run's page, once known (null for disabled/offline runs). */
  readonly url: string | null;
}

export interface WandbOptions extends PacingOptions {
  /** The run config (recipe, plan, trainable/active params); sent with each key wrapped {value}. */
  config?: Record<string, unknown>;
  /** Where messages for the user go (run URL, a refused key, upload trouble). */
  log?: (msg: string) => void;
  /** Per-request timeout (the official client uses 180 s). */
  requestTimeoutMs?: number;
  /** How long finish() waits for the last upload before leaving the rest to `hilo wandb sync`. */
  finishTimeoutMs?: number;
}

/** The sink that does nothing, for mode `disabled`. */
export const noopSink: MetricSink = { log() {}, summary() {}, async finish() {}, url: null };

export function createWandb(settings: WandbSettings, runDir: string, opts: WandbOptions = {}): MetricSink {
  if (settings.mode === 'disabled') return noopSink;
  const report = opts.log ?? ((m: string) => process.stderr.write(m + '\n'));
  const queue = new RunQueue(queueDirFor(settings, runDir));
  const run = openRun(queue, settings, opts.config ?? {});
  const state = queue.readState();
  const history = queue.readHistory();

  // Resumed runs continue their clock and their step count.
  const last = history.length ? fromWandbJson(history[history.length - 1]) : null;
  const runtimeBefore: number = last?._runtime ?? 0;
  let lastStep: number = last?._step ?? -1;
  const t0 = performance.now();
  const explicit = queue.readSummary();
  const lastValues = summaryFrom(history, {});
  const summaryText = () => toWandbJson({ ...lastValues, ...explicit });

  let pending: { step: number; metrics: Record<string, unknown>; since: number } | null = null;
  const warned = new Set<string>();
  const warnOnce = (key: string, msg: string) => {
    if (!warned.has(key)) report(msg);
    warned.add(key);
  };

  // A row sent early (it waited a transmit interval) may still get values for its step: those
  // go in a second row with the same _step. Otherwise a step at or before the last is skipped.
  let lastSentEarly = false;
  const commit = (early = false) => {
    if (!pending) return;
    lastSentEarly = early;
    const runtime = runtimeBefore + (performance.now() - t0) / 1000;
    const row = historyRow(pending.metrics, pending.step, runtime, Date.now() / 1000);
    const line = toWandbJson(row);
    queue.append(line);
    Object.assign(lastValues, row);
    lastStep = pending.step;
    pending = null;
    sender?.push(line);
  };

  const pace = opts.transmitIntervalMs ?? 15_000;
  const sender =
    settings.mode === 'online'
      ? new FileStreamSender(
          {
            api: new WandbApi(settings.baseUrl, settings.apiKey!, opts.requestTimeoutMs),
            queue, run, state, config: opts.config ?? {}, appUrl: settings.appUrl,
            unacked: history.slice(state.historyAcked),
            summaryText,
            // A row still collecting values goes out once it has waited a transmit interval.
            beforeSend: () => {
              if (pending && performance.now() - pending.since >= pace) commit(true);
            },
            report,
          },
          opts,
        )
      : null;
  sender?.start();
  if (!sender) report(`W&B offline: records go to ${queue.dir}; upload them with \`hilo wandb sync ${runDir}\`.`);

  return {
    get url() {
      return sender?.url ?? null;
    },
    log(step, metrics) {
      try {
        if (pending && step === pending.step) {
          for (const [k, v] of Object.entries(metrics)) pending.metrics[k] = encodeMetric(k, v);
          return;
        }
        commit();
        if (!Number.isFinite(step) || step < lastStep || (step === lastStep && !lastSentEarly)) {
          warnOnce('step', `W&B: step ${step} is not after step ${lastStep} already logged; W&B steps only go forward, so such rows are skipped.`);
          return;
        }
        const encoded: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(metrics)) encoded[k] = encodeMetric(k, v);
        pending = { step, metrics: encoded, since: performance.now() };
      } catch (e) {
        warnOnce(`error:${(e as Error).message}`, `W&B: ${(e as Error).message}; that row is skipped.`);
      }
    },
    summary(values) {
      try {
        for (const [k, v] of Object.entries(values)) explicit[k] = encodeMetric(k, v);
        queue.writeSummary(explicit);
      } catch (e) {
        warnOnce(`error:${(e as Error).message}`, `W&B: ${(e as Error).message}; summary not updated.`);
      }
    },
    async finish(exitCode = 0) {
      commit();
      state.exitCode = exitCode;
      queue.writeState(state);
      queue.close();
      if (!sender) {
        report(`W&B offline run ${run.runId} saved in ${queue.dir}; upload it with \`hilo wandb sync ${runDir}\`.`);
        return;
      }
      const allSent = await sender.finish(opts.finishTimeoutMs ?? 60_000);
      if (!allSent) {
        report(`W&B: ${sender.pending} history lines are not on the server yet; they are kept in ${queue.dir}. ` +
          `Upload them with \`hilo wandb sync ${runDir}\`.`);
      }
      if (sender.url) report(`W&B: run finished: ${sender.url}`);
    },
  };
}

/** The run recorded in the queue folder, or a new one. A different WANDB_RUN_ID starts over. */
function openRun(queue: RunQueue, settings: WandbSettings, config: Record<string, unknown>): RunRecord {
  const old = queue.readRun();
  if (old && (settings.runId === null || settings.runId === old.runId)) {
    old.mode = settings.mode === 'online' ? 'online' : old.mode;
    queue.writeRun(old);
    queue.writeConfig(config);
    return old;
  }
  if (old) {
    // Keep the other run's records next to this one instead of mixing the two.
    const aside = `${queue.dir}-${old.runId}`;
    if (!existsSync(aside)) renameSync(queue.dir, aside);
  }
  const run: RunRecord = {
    runId: settings.runId ?? newRunId(),
    entity: settings.entity,
    project: settings.project,
    displayName: settings.name,
    group: settings.group,
    tags: settings.tags,
    notes: settings.notes,
    jobType: settings.jobType,
    mode: settings.mode === 'online' ? 'online' : 'offline',
    createdAt: new Date().toISOString(),
  };
  queue.writeRun(run);
  queue.writeConfig(config);
  return run;
}

export { runUrl };
