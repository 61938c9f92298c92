/**
 * The memory estimate (src/allocate/memory.ts) as a pure function of config, storage, recipe
 * numbers and machine, on the real shapes of src/model/real-shapes.ts; the advice it gives is
 * re-estimated to fit; the machine reader parses /proc/meminfo.
 */
import { describe, expect, it } from 'vitest';
import { memAvailable } from '../../src/allocate/machine-memory.ts';
import { adapterRowFloats, memoryAdvice } from '../../src/allocate/memory-for-recipe.ts';
import {
  estimateMemory, evalChunkRows, GiB, HEAP_F32, WASM_HEAP_LIMIT, type FrozenStorage, type MemoryInput,
} from '../../src/allocate/memory.ts';
import { countPlan } from '../../src/adapters/params.ts';
import { normaliseConfig } from '../../src/model/config.ts';
import { REAL_SHAPES } from '../../src/model/real-shapes.ts';
import { baseParams, moduleShapes } from '../../src/model/families.ts';
import { CHUNK_LOGIT_BYTES, chunkRows } from '../../src/ops/chunk-rows.ts';
import type { Recipe } from '../../src/recipe/schema.ts';

const MODS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];
const MACHINE = { availableBytes: 20 * GiB, totalBytes: 24 * GiB, source: 'test' };

/** The recipe: MoE 4 experts r8 top-2 on all 7 projections, batch 8 x 128, 2 replicas, wasm. */
function input(shape: string, over: Partial<MemoryInput> = {}): MemoryInput {
  const config = normaliseConfig(REAL_SHAPES[shape]);
  const plan = { strategy: 'topk' as const, layers: Array.from({ length: config.numLayers }, () => Object.fromEntries(MODS.map((m) => [m, { experts: 4, rank: 8, topK: 2 }]))) };
  return {
    config, checkpointDtype: 'bfloat16', storage: HEAP_F32, mode: 'train', fullTraining: false,
    adapters: { trainable: countPlan(plan, moduleShapes(config)).trainable, rowFloats: adapterRowFloats(plan, config) },
    batch: 8, evalBatch: 16, seqLen: 128, replicas: 2, gradientCheckpointing: false, heapLimit: WASM_HEAP_LIMIT, machine: MACHINE, ...over,
  };
}
const item = (e: ReturnType<typeof estimateMemory>, name: string) => e.items.find((i) => i.name === name)!;

describe('baseParams', () => {
  // what transformers' model.num_parameters() reports for each checkpoint (tied embeddings once)
  it.each([
    ['smollm2-135m', 134_515_008], ['smollm2-360m', 361_821_120], ['qwen2.5-0.5b', 494_032_768], ['qwen2.5-1.5b', 1_543_714_304],
    ['llama-3.2-1b', 1_235_814_400], ['tinyllama-1.1b', 1_100_048_384], ['llama-2-7b', 6_738_415_616], ['mistral-7b-v0.1', 7_241_732_096],
  ])('%s: %i values', (name, want) => {
    expect(baseParams(normaliseConfig(REAL_SHAPES[name])).total).toBe(want);
  });
});

describe('estimateMemory', () => {
  const HOST_BF16: FrozenStorage = { dtype: 'bfloat16', place: 'host' };
  // frozen bytes per replica copy: (values + a heap model's tied head, transposed) x bytes per
  // value; stored weights multiply by the embedding itself, so they hold no second copy
  it.each([
    ['smollm2-135m', HEAP_F32, 2, (134_515_008 + 49152 * 576) * 4, 2, true],
    ['qwen2.5-0.5b', HEAP_F32, 2, (494_032_768 + 151936 * 896) * 4, 2, true],
    ['qwen2.5-0.5b', HOST_BF16, 2, 494_032_768 * 2, 1, false],
    ['llama-2-7b', HEAP_F32, 1, 6_738_415_616 * 4, 1, true],
    ['llama-2-7b', HOST_BF16, 2, 6_738_415_616 * 2, 1, false],
  ] as const)('%s, %o, %d replicas: frozen weights %d bytes x %d copies, in the heap: %s', (shape, storage, replicas, perCopy, copies, inHeap) => {
    const e = estimateMemory(input(shape, { storage, replicas }));
    const frozen = item(e, 'frozen weights');
    expect(frozen.bytes).toBe(perCopy * copies);
    expect(frozen.heapBytes).toBe(inHeap ? perCopy : 0);
    expect(e.heap).toBe(e.items.reduce((s, i) => s + i.heapBytes, 0));
    expect(e.total).toBe(Math.max(e.stepPeak, e.loadPeak));
  });

  // which limits the recipe breaks, by shape and storage
  it.each([
    ['smollm2-135m', HEAP_F32, 2, 8, 128, ['heap']],
    ['smollm2-135m', HEAP_F32, 2, 4, 128, []],
    ['qwen2.5-0.5b', HEAP_F32, 2, 8, 128, ['heap', 'process']],
    ['qwen2.5-0.5b', HEAP_F32, 1, 1, 64, []],
    ['llama-3.2-1b', HEAP_F32, 1, 1, 8, ['heap']], // 6.2 GB of float32 weights in one heap
    ['qwen2.5-1.5b', HEAP_F32, 1, 1, 128, ['heap']],
    ['qwen2.5-1.5b', HOST_BF16, 2, 2, 64, []], // once the weights leave the heap
    ['llama-2-7b', HOST_BF16, 1, 1, 64, ['heap']], // its 80M trainables' AdamW state + activations
    ['llama-2-7b', HEAP_F32, 1, 1, 8, ['heap', 'process']],
  ] as const)('%s %o, %d replicas, %d x %d: breaks %o', (shape, storage, replicas, batch, seqLen, broken) => {
    const e = estimateMemory(input(shape, { storage, replicas, batch, evalBatch: batch, seqLen }));
    const got = e.problems.map((p) => (p.includes('wasm heap') ? 'heap' : 'process'));
    expect(got).toEqual(broken);
  });

  it('names the limit, the estimate and what is available', () => {
    const [heap, process] = estimateMemory(input('qwen2.5-0.5b')).problems;
    expect(heap).toMatch(/^one replica's wasm heap would need 10\.\d\d GiB \(activations .*\), above tfjs-backend-wasm's 4\.00 GiB per heap$/);
    expect(process).toMatch(/above the 20\.00 GiB available \(test; 24\.00 GiB total\)$/);
  });

  it('is smaller with fewer replicas, checkpointing, fewer tokens, forward only, or a machine without a heap cap', () => {
    const full = estimateMemory(input('smollm2-135m'));
    for (const over of [{ replicas: 1 }, { gradientCheckpointing: true }, { seqLen: 64 }, { batch: 4 }]) {
      expect(estimateMemory(input('smollm2-135m', over)).total, JSON.stringify(over)).toBeLessThan(full.total);
    }
    const forward = estimateMemory(input('smollm2-135m', { mode: 'forward', evalBatch: null }));
    expect(item(forward, 'activations').bytes).toBeLessThan(item(full, 'activations').bytes);
    expect(item(forward, 'adapters').bytes).toBeLessThan(item(full, 'adapters + AdamW state').bytes);
    const uncapped = estimateMemory(input('smollm2-135m', { heapLimit: null }));
    expect(uncapped.problems).toEqual([]);
    expect(uncapped.total).toBe(full.total);
  });

  it('counts the evaluation pass when it is the larger one, a chunk of rows at a time (evalChunkRows) whatever its batch', () => {
    const small = estimateMemory(input('smollm2-135m', { batch: 2, evalBatch: 2, gradientCheckpointing: true }));
    const chunk = estimateMemory(input('smollm2-135m', { batch: 2, evalBatch: 2 * evalChunkRows(128), gradientCheckpointing: true }));
    const bigEval = estimateMemory(input('smollm2-135m', { batch: 2, evalBatch: 256, gradientCheckpointing: true }));
    expect(item(chunk, 'activations').detail).toMatch(/^evaluation forward: .* 4 x 128 tokens per replica: /);
    expect(item(bigEval, 'activations').detail).toMatch(/^evaluation forward: .* 4 x 128 tokens per replica at a time \(of 128\): /);
    expect(chunk.heap).toBeGreaterThan(small.heap);
    expect(bigEval.total).toBe(chunk.total);
  });

  it('full training (adapter.method none) has no frozen copy and AdamW on every weight', () => {
    const config = normaliseConfig(REAL_SHAPES['smollm2-135m']);
    const e = estimateMemory(input('smollm2-135m', { fullTraining: true, replicas: 1, adapters: { trainable: baseParams(config).total, rowFloats: 0 } }));
    expect(e.items.find((i) => i.name === 'frozen weights')).toBeUndefined();
    expect(item(e, 'weights + AdamW state').heapBytes).toBe(134_515_008 * 16);
  });

  it('a frozen head\'s logits count one chunk of rows (chunkedTokenNll), a trainable head\'s every row', () => {
    // 4 x 128 rows a replica (8 rows over 2 replicas), the 16-row evaluation the larger pass
    const frozen = item(estimateMemory(input('qwen2.5-0.5b', { evalBatch: null })), 'logits');
    expect(frozen.heapBytes).toBe(2 * chunkRows(151936, 512) * 151936 * 4);
    expect(frozen.heapBytes).toBeLessThanOrEqual(2 * CHUNK_LOGIT_BYTES);
    const config = normaliseConfig(REAL_SHAPES['qwen2.5-0.5b']);
    const full = item(estimateMemory(input('qwen2.5-0.5b', { evalBatch: null, fullTraining: true, adapters: { trainable: baseParams(config).total, rowFloats: 0 } })), 'logits');
    expect(full.heapBytes).toBe(3 * 512 * 151936 * 4);
  });
});

describe('estimateMemory against measured peaks', () => {
  // Peak RSS of `hilo train` with the recipe (bf16 outside the heaps, checkpointing on,
  // 2 replicas, eval batch 16), measured on this code: scripts/bench-results/real-size.md, the
  // second 2026-12-05 section. The estimate must never be below a measured peak (it refuses runs
  // that cannot fit) and should stay within 15% above it.
  it.each([
    ['llama-3.2-1b', 4_212_252 * 1024],
    ['smollm2-135m', 1_399_364 * 1024],
    ['qwen2.5-0.5b', 2_346_788 * 1024],
    ['qwen2.5-1.5b', 5_281_196 * 1024],
  ])('%s: at most 15%% above the measured %d bytes, never below', (shape, measured) => {
    const e = estimateMemory(input(shape, { storage: { dtype: 'bfloat16', place: 'host' }, gradientCheckpointing: true }));
    expect(e.total).toBeGreaterThanOrEqual(measured);
    expect(e.total).toBeLessThanOrEqual(1.15 * measured);
  });
});

describe('memoryAdvice', () => {
  const recipe = { train: { gradient_accumulation_steps: 1 } } as unknown as Recipe;
  it('suggests changes that each fit when re-estimated, keeping the effective batch', () => {
    const advice = memoryAdvice(input('smollm2-135m'), recipe);
    expect(advice[0]).toMatch(/^train\.batch_size=4 train\.gradient_accumulation_steps=2 train\.eval_batch_size=4 \(estimated/);
    expect(advice.some((a) => a.startsWith('data.max_length=64 '))).toBe(true);
    expect(estimateMemory(input('smollm2-135m', { batch: 4, evalBatch: 4 })).problems).toEqual([]);
  });

  it('offers checkpointing only when the recipe has the field', () => {
    const withField = { train: { gradient_accumulation_steps: 1, gradient_checkpointing: false } } as unknown as Recipe;
    expect(memoryAdvice(input('smollm2-135m'), recipe).join('\n')).not.toMatch(/gradient_checkpointing/);
    expect(memoryAdvice(input('smollm2-135m'), withField).join('\n')).toMatch(/train\.gradient_checkpointing=true/);
  });

  it('says when the weights alone leave no room', () => {
    expect(memoryAdvice(input('llama-3.2-1b'), recipe)).toEqual([
      expect.stringMatching(/^no batch, length or replica count fits: the model's weights alone take 5\.\d\d GiB of a wasm heap's 4\.00 GiB/),
    ]);
  });
});

describe('memAvailable', () => {
  it.each([
    ['MemTotal:       24683716 kB\nMemFree:         1000 kB\nMemAvailable:   15000000 kB\n', 15000000 * 1024],
    ['MemTotal:       24683716 kB\nMemFree:         1000 kB\n', null],
    ['', null],
  ])('%#', (text, want) => expect(memAvailable(text)).toBe(want));
});
