/**
 * How many rows of [rows, vocab] logits chunkedTokenNll (cross-entropy.ts) makes at once: plain
 * numbers, so the memory estimate (src/allocate/memory.ts) reads the same fact without tfjs.
 */

/**
 * Bytes of float32 logits one chunk of chunkedTokenNll makes (with the kernel's saved exps, twice
 * that). At most 128 MiB, the least maxStorageBufferBindingSize WebGPU lets an adapter offer, so
 * a chunk's logits and their gradient bind whole on any GPU (src/backend/webgpu-token-nll.ts).
 */
export const CHUNK_LOGIT_BYTES = 64 * 2 ** 20;

/** Rows per chunk for a vocabulary of `vocab`: all `rows` when their logits fit in CHUNK_LOGIT_BYTES. */
export function chunkRows(vocab: number, rows: number, bytes = CHUNK_LOGIT_BYTES): number {
  return Math.max(1, Math.min(rows, Math.floor(bytes / (4 * Math.max(1, vocab)))));
}
