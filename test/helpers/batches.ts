/** Small token batches the model and training tests share. */
import { padBatch } from '../../src/data/batch.ts';
import { IGNORE_INDEX } from '../../src/data/encode.ts';
import { mulberry32 } from '../../src/rng.ts';
import type { MicroBatch } from '../../src/train/shard.ts';

/** 5 sequences of 9-16 tokens whose second half carries loss (padding of unequal lengths included). */
export function microBatch(vocab: number): MicroBatch {
  const u = mulberry32(7);
  const seqs = Array.from({ length: 5 }, (_, i) => {
    const inputIds = Array.from({ length: 9 + ((i * 3) % 8) }, () => 1 + Math.floor(u() * (vocab - 1)));
    return { inputIds, labels: inputIds.map((id, t) => (t >= inputIds.length / 2 ? id : IGNORE_INDEX)) };
  });
  return { kind: 'tokens', batch: padBatch(seqs, 0) };
}
