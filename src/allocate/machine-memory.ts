/**
 * Memory this process can still get: the kernel's MemAvailable (free + reclaimable cache;
 * os.freemem() where there is no /proc/meminfo), lowered to a cgroup's headroom (limit minus
 * usage, v2 or v1) when the process runs in a container with a memory limit.
 */
import fs from 'node:fs';
import os from 'node:os';
import type { MachineMemory } from './memory.ts';

function readNumber(file: string): number | null {
  try {
    const text = fs.readFileSync(file, 'utf8').trim();
    if (text === 'max' || !/^\d+$/.test(text)) return null;
    const n = Number(text);
    // cgroup v1 writes "no limit" as a number near 2^63
    return n > 2 ** 60 ? null : n;
  } catch {
    return null;
  }
}

/** MemAvailable from the text of /proc/meminfo, in bytes (null when absent). */
export function memAvailable(meminfo: string): number | null {
  const m = /^MemAvailable:\s+(\d+)\s*kB/m.exec(meminfo);
  return m ? Number(m[1]) * 1024 : null;
}

export function machineMemory(): MachineMemory {
  const totalBytes = os.totalmem();
  let meminfo = '';
  try {
    meminfo = fs.readFileSync('/proc/meminfo', 'utf8');
  } catch {
    // not Linux
  }
  const avail = memAvailable(meminfo);
  let best: MachineMemory = avail === null
    ? { availableBytes: os.freemem(), totalBytes, source: 'os.freemem()' }
    : { availableBytes: avail, totalBytes, source: 'MemAvailable' };
  const cgroups: Array<[string, string, string]> = [
    ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory.current', 'cgroup memory.max'],
    ['/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/memory/memory.usage_in_bytes', 'cgroup memory.limit_in_bytes'],
  ];
  for (const [limitFile, usageFile, name] of cgroups) {
    const limit = readNumber(limitFile);
    if (limit === null) continue;
    const headroom = Math.max(0, limit - (readNumber(usageFile) ?? 0));
    if (headroom < best.availableBytes) best = { availableBytes: headroom, totalBytes: Math.min(totalBytes, limit), source: `${name} ${limit} minus usage` };
  }
  return best;
}
