/**
 * The run's W&B records on disk, written before anything is sent so nothing depends on the
 * server being up: the queue folder (RUN_DIR/wandb, or WANDB_DIR/wandb/<run folder name>) holds
 *   run.json      who the run is (id, entity, project, name, group, tags, notes, job type, mode)
 *   config.json   the run config as given (sent wrapped, see encode.ts)
 *   history.jsonl one W&B history line per row, exactly the text sent (line i = offset i)
 *   summary.json  values given to summary() (the sent summary adds the last history values)
 *   state.json    what the server has acknowledged (history lines, summary, completion)
 * Offline runs and runs whose server was down are uploaded from here by `hilo wandb sync`.
 */
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fromWandbJson, toWandbJson } from './encode.ts';

export interface RunRecord {
  runId: string;
  /** null until the server names the key's default entity. */
  entity: string | null;
  project: string;
  displayName: string | null;
  group: string | null;
  tags: string[];
  notes: string | null;
  jobType: string;
  mode: 'online' | 'offline';
  createdAt: string;
}

export interface QueueState {
  /** History lines the server has acknowledged (the next file_stream offset). */
  historyAcked: number;
  /** The summary text the server last acknowledged. */
  summaryAcked: string | null;
  /** Set by finish(); sync sends `complete` only for runs that ended. */
  exitCode: number | null;
  completeAcked: boolean;
}

/** Where the queue lives: RUN_DIR/wandb, or WANDB_DIR/wandb/<run folder name>. */
export function queueDirFor(settings: { dir: string | null }, runDir: string): string {
  return settings.dir ? join(settings.dir, 'wandb', basename(resolve(runDir))) : join(runDir, 'wandb');
}

export const freshState = (): QueueState => ({ historyAcked: 0, summaryAcked: null, exitCode: null, completeAcked: false });

export class RunQueue {
  private fd: number | null = null;

  constructor(readonly dir: string) {}

  private path(name: string): string {
    return join(this.dir, name);
  }

  exists(): boolean {
    return existsSync(this.path('run.json'));
  }

  readRun(): RunRecord | null {
    return this.exists() ? (JSON.parse(readFileSync(this.path('run.json'), 'utf8')) as RunRecord) : null;
  }

  writeRun(run: RunRecord): void {
    mkdirSync(this.dir, { recursive: true });
    this.writeAtomic('run.json', JSON.stringify(run, null, 2) + '\n');
  }

  readConfig(): Record<string, unknown> {
    const p = this.path('config.json');
    return existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')) : {};
  }

  writeConfig(config: Record<string, unknown>): void {
    this.writeAtomic('config.json', toWandbJson(config) + '\n');
  }

  /** Every complete history line; a torn last line (crash mid-write) is cut off the file. */
  readHistory(): string[] {
    const p = this.path('history.jsonl');
    if (!existsSync(p)) return [];
    const text = readFileSync(p, 'utf8');
    const end = text.lastIndexOf('\n') + 1;
    if (end < text.length) {
      const fd = openSync(p, 'r+');
      ftruncateSync(fd, Buffer.byteLength(text.slice(0, end)));
      closeSync(fd);
    }
    return text.slice(0, end).split('\n').filter((l) => l !== '');
  }

  /** Append one history line; a synchronous write of a few hundred bytes (microseconds). */
  append(line: string): void {
    if (this.fd === null) {
      mkdirSync(this.dir, { recursive: true });
      this.fd = openSync(this.path('history.jsonl'), 'a');
    }
    writeSync(this.fd, line + '\n');
  }

  readSummary(): Record<string, unknown> {
    const p = this.path('summary.json');
    return existsSync(p) ? fromWandbJson(readFileSync(p, 'utf8')) : {};
  }

  writeSummary(values: Record<string, unknown>): void {
    this.writeAtomic('summary.json', toWandbJson(values) + '\n');
  }

  readState(): QueueState {
    const p = this.path('state.json');
    return existsSync(p) ? { ...freshState(), ...JSON.parse(readFileSync(p, 'utf8')) } : freshState();
  }

  writeState(state: QueueState): void {
    this.writeAtomic('state.json', JSON.stringify(state) + '\n');
  }

  close(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
  }

  /** Write-then-rename, so a crash leaves the old file or the new one, never half of one. */
  private writeAtomic(name: string, text: string): void {
    mkdirSync(this.dir, { recursive: true });
    const tmp = this.path(`.${name}.tmp`);
    writeFileSync(tmp, text);
    renameSync(tmp, this.path(name));
  }
}

/** The summary W&B shows: each key's last history value, then the values given to summary(). */
export function summaryFrom(historyLines: readonly string[], explicit: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const line of historyLines) Object.assign(out, fromWandbJson(line));
  return Object.assign(out, explicit);
}
