/** The run's metrics file: one JSON object per line, appended synchronously so a crash loses nothing logged. */
import fs from 'node:fs';
import path from 'node:path';

export class MetricsFile {
  readonly file: string;

  constructor(runDir: string, name = 'metrics.jsonl') {
    this.file = path.join(runDir, name);
    fs.mkdirSync(runDir, { recursive: true });
  }

  append(record: Record<string, unknown>): void {
    fs.appendFileSync(this.file, `${JSON.stringify(record)}\n`);
  }

  /** Drop records after `step` (a resumed run rewrites what the killed run logged past its checkpoint). */
  truncateAfter(step: number): void {
    if (!fs.existsSync(this.file)) return;
    const kept = fs
      .readFileSync(this.file, 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !(JSON.parse(l).step > step));
    fs.writeFileSync(this.file, kept.map((l) => `${l}\n`).join(''));
  }

  read(): Array<Record<string, unknown>> {
    if (!fs.existsSync(this.file)) return [];
    return fs.readFileSync(this.file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  }
}
