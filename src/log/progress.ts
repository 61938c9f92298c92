/**
 * The console side of a run: a one-line progress bar on a terminal (step, loss, lr, tokens/s,
 * ETA), plain lines every `logging_steps` otherwise (CI logs, pipes).
 */
export interface ProgressLine {
  step: number;
  total: number;
  loss: number;
  lr: number;
  tokensPerSecond: number;
  elapsedSeconds: number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
}

/** `[#####.....] 120/200 loss 0.6931 lr 3.00e-4 1,234 tok/s 00:42<00:28` */
export function formatProgress(p: ProgressLine, width = 20): string {
  const frac = p.total > 0 ? Math.min(1, p.step / p.total) : 0;
  const filled = Math.round(frac * width);
  const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
  const eta = p.step > 0 ? (p.elapsedSeconds / p.step) * (p.total - p.step) : NaN;
  return (
    `[${bar}] ${p.step}/${p.total} loss ${p.loss.toFixed(4)} lr ${p.lr.toExponential(2)} ` +
    `${Math.round(p.tokensPerSecond).toLocaleString('en-US')} tok/s ${formatDuration(p.elapsedSeconds)}<${formatDuration(eta)}`
  );
}

export class Progress {
  private readonly tty: boolean;
  private lastLen = 0;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {
    this.tty = Boolean(out.isTTY) && !process.env.CI;
  }

  /** Redraw the bar on a terminal; print a line when `force` (the logging steps) otherwise. */
  update(p: ProgressLine, force: boolean): void {
    const line = formatProgress(p);
    if (this.tty) {
      this.out.write(`\r${line}${' '.repeat(Math.max(0, this.lastLen - line.length))}`);
      this.lastLen = line.length;
    } else if (force) {
      this.out.write(`${line}\n`);
    }
  }

  /** Print a message on its own line without breaking the bar. */
  message(text: string): void {
    if (this.tty && this.lastLen > 0) this.out.write('\n');
    this.lastLen = 0;
    this.out.write(`${text}\n`);
  }

  done(): void {
    if (this.tty && this.lastLen > 0) this.out.write('\n');
    this.lastLen = 0;
  }
}
