/**
 * An alpha-hill worker: fits the stored matrices the parent posts, one at a time, with OpenBLAS
 * on one thread (the parallelism is one worker per core; see alpha-hill-dir.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadLapack } from '../backend/lapack.ts';
import { fitStored, type SpectrumJob, type SpectrumReply } from './alpha-hill-dir.ts';
import { Scratch } from './spectrum.ts';

const lapack = (workerData as { native: boolean }).native ? loadLapack().lapack : null;
lapack?.threads?.setThreads(1);
const scratch = new Scratch(); // the worker's buffers, reused matrix after matrix

parentPort!.on('message', (job: SpectrumJob) => {
  let reply: SpectrumReply;
  try {
    reply = { index: job.index, fit: fitStored(job, lapack, scratch) };
  } catch (e) {
    reply = { index: job.index, error: (e as Error).message };
  }
  parentPort!.postMessage(reply);
});
