/** The run's metrics file: one JSON object per line, appended synchronously so a crash loses nothing logged. */
import fs from 'node:fs';
import path from 'node:path';
import { fileError } from '../errors.ts';
import { writeFileAtomic } from '../files.ts';

export class MetricsFile {
  readonly file: string;

  /** `note` hears about lines dropped as unreadable (default: stderr). */
  constructor(runDir: string, name = 'metrics.jsonl', private readonly note: (msg: string) => void = (m) => process.stderr.write(`${m}\n`)) {
    this.file = path.join(runDir, name);
    fs.mkdirSync(runDir, { recursive: true });
  }

  append(record: Record<string, unknown>): void {
    try {
      fs.appendFileSync(this.file, `${JSON.stringify(record)}\n`);
    } catch (e) {
      throw fileError(e, this.file) ?? e; // a failed write(2) names no file
    }
  }

  /**
   * Drop records after `step` (a resumed run rewrites what the killed run logged past its
   * checkpoint). A line that is not JSON, typically the last one torn by a kill mid-append, is
   * dropped too, and said so: the step it held is logged again.
   */
  truncateAfter(step: number): void {
    if (!fs.existsSync(this.file)) return;
    const kept: string[] = [];
    const lines = fs.readFileSync(this.file, 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (!line.trim()) return;
      let record: unknown;
      try {
        record = JSON.parse(line);
      } catch {
        const torn = lines.slice(i + 1).every((l) => !l.trim()) ? ' (torn: the run was stopped while writing it)' : '';
        this.note(`${this.file}:${i + 1}: dropped a line that is not JSON${torn}: ${line.length > 60 ? `${line.slice(0, 57)}...` : line}`);
        return;
      }
      if (!((record as { step?: number })?.step! > step)) kept.push(line);
    });
    writeFileAtomic(this.file, kept.map((l) => `${l}\n`).join(''));
  }

  read(): Array<Record<string, unknown>> {
    if (!fs.existsSync(this.file)) return [];
    return fs.readFileSync(this.file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  }
}
