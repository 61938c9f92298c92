import { describe, expect, it } from 'vitest';
import { fileError } from '../src/errors.ts';

const errno = (code: string, p?: string) => Object.assign(new Error(`${code}: raw`), { code, ...(p ? { path: p } : {}) });

describe('fileError', () => {
  it.each<[unknown, string | undefined, string | null]>([
    [errno('ENOSPC'), '/run/checkpoint-4/optimizer.safetensors',
      'cannot write /run/checkpoint-4/optimizer.safetensors: no space left on the device: the disk is full (ENOSPC); free some space or choose an output_dir on another disk'],
    [errno('EROFS', '/mnt/ro/run'), undefined, 'cannot write /mnt/ro/run: the file system is read-only (EROFS); choose an output_dir you can write to'],
    [errno('ENOTDIR', '/x/file/run'), undefined, 'cannot write /x/file/run: a part of the path is a file, not a folder (ENOTDIR); choose an output_dir in a folder'],
    [errno('EACCES'), undefined, 'cannot write a file: permission denied (EACCES); choose an output_dir you can write to'],
    [errno('ENOENT', '/x'), undefined, null], // not a fault of the disk: the caller's own message says what is missing
    [new Error('plain'), undefined, null],
    ['a string', undefined, null],
    [null, undefined, null],
  ])('%s', (e, file, want) => {
    const got = fileError(e, file);
    expect(got?.message ?? null).toBe(want);
    if (got) expect(got.name).toBe('HiloError');
  });
});
