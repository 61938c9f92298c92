/**
 * The run folder as HF Trainer treats its output_dir: one run per folder. A folder that already
 * holds a run is refused unless the run resumes it or `train.overwrite_output_dir` clears it
 * first, and a lock file keeps a second `hilo train` out while the first one writes there (two
 * runs into one folder would interleave their metrics and checkpoints).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileError, HiloError } from '../errors.ts';

export const LOCK_FILE = '.hilo-train.lock';

/**
 * What a training run writes into its folder: these make a folder "hold a run", and only these
 * are cleared by overwrite_output_dir. probe.json and plan.json are not among them: `hilo probe`
 * and `hilo plan` write them there ahead of training, for the run to reuse (a manual plan_path
 * may point at that plan.json), and a run rewrites them anyway. Other files are the user's.
 */
const RUN_ENTRY = /^(recipe\.json|metrics\.jsonl|results\.json|adapter|model|wandb|checkpoint-\d+|\.checkpoint-\d+\.tmp-\d+|.+\.tmp-\d+-\d+)$/;

export interface RunDirClaim {
  dir: string;
  /** Drop the lock; after a failed start also the folder (and parents) this claim created, if they are empty. */
  release(opts?: { failed?: boolean }): void;
}

/** The nearest existing ancestor of `dir` (itself included), and whether it is a folder. */
function nearestExisting(dir: string): { at: string; isDir: boolean } {
  for (let at = dir; ; at = path.dirname(at)) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(at, { throwIfNoEntry: false });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOTDIR') throw e; // a file further up: keep climbing to it
    }
    if (st) return { at, isDir: st.isDirectory() };
    if (path.dirname(at) === at) return { at, isDir: true };
  }
}

/** Is process `pid` alive? (EPERM: it exists but belongs to someone else.) */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Take the folder's lock, or name the live process that holds it; a dead holder's lock is taken over. */
function lock(dir: string, log: (m: string) => void): string {
  const file = path.join(dir, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx');
      try {
        fs.writeSync(fd, `${process.pid}\n`);
      } catch (e) {
        fs.rmSync(file, { force: true }); // an empty lock (a full disk) would read as nobody's
        throw fileError(e, file) ?? e;
      } finally {
        fs.closeSync(fd);
      }
      return file;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) throw e;
    }
    const text = fs.readFileSync(file, 'utf8').trim();
    const pid = Number(text);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      throw new HiloError(
        `recipe.output_dir: ${dir} is in use by another hilo train (pid ${pid}, lock ${file}); ` +
          'wait for it to finish, stop it, or choose another output_dir',
      );
    }
    // this process's own leftover (a run in it that ended without releasing) is simply taken back
    if (pid !== process.pid) log(`${file}: taking over the lock of pid ${text || '(none)'}, which is no longer running`);
    fs.rmSync(file, { force: true });
  }
}

/** The entries of a folder that a previous run wrote. */
function previousRun(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => RUN_ENTRY.test(f)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
}

function listed(entries: string[]): string {
  return entries.length > 6 ? `${entries.slice(0, 6).join(', ')}, ... (${entries.length} entries)` : entries.join(', ');
}

/**
 * Make `dir` this run's folder: created if missing, locked, and checked for a previous run,
 * which only `resuming` keeps and only `overwrite` removes. Call it before anything is written.
 */
export function claimRunDir(dir: string, opts: { resuming: boolean; overwrite: boolean; log: (m: string) => void }): RunDirClaim {
  const { at, isDir } = nearestExisting(dir);
  if (!isDir) {
    const where = at === dir ? `${dir} is a file` : `${dir} is below ${at}, which is a file`;
    throw new HiloError(`recipe.output_dir: ${where}, not a folder; choose an output_dir that is (or can be made) a folder`);
  }
  const created = fs.mkdirSync(dir, { recursive: true }) ?? null;
  const lockFile = lock(dir, opts.log);
  const release: RunDirClaim['release'] = ({ failed = false } = {}) => {
    if (fs.existsSync(lockFile) && fs.readFileSync(lockFile, 'utf8').trim() === String(process.pid)) fs.rmSync(lockFile);
    if (!failed || !created) return;
    // a start that failed leaves no empty folders behind
    for (let d = dir; d === created || d.startsWith(created + path.sep); d = path.dirname(d)) {
      if (!fs.existsSync(d) || fs.readdirSync(d).length) break;
      fs.rmdirSync(d);
    }
  };
  try {
    const entries = previousRun(dir);
    if (entries.length && !opts.resuming) {
      if (!opts.overwrite) {
        throw new HiloError(
          `recipe.output_dir: ${dir} already holds a run (${listed(entries)}); continue it with resume=true, ` +
            'start it over with train.overwrite_output_dir=true (deletes those), or choose another output_dir',
        );
      }
      for (const f of entries) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
      opts.log(`train.overwrite_output_dir: cleared the previous run from ${dir} (${listed(entries)})`);
    }
  } catch (e) {
    release({ failed: true });
    throw e;
  }
  return { dir, release };
}
