/**
 * The family registry: each architecture's projections, tensor names and file spellings, and the
 * answers the rest of hilo derives from them (module shapes, paths, base parameter counts).
 */
import { describe, expect, it } from 'vitest';
import { normaliseConfig } from '../../src/model/config.ts';
import { baseParams, defaultTargets, FAMILIES, familyOf, layerPrefix, moduleShapes, MODEL_TYPES, projectionPaths, targetMatches } from '../../src/model/families.ts';
import { REAL_SHAPES } from '../../src/model/real-shapes.ts';
import { gpt2, stories260K } from '../allocate/fixtures.ts';

describe('family registry', () => {
  it('reads every model_type once, each by one family', () => {
    expect(MODEL_TYPES).toEqual(['llama', 'mistral', 'qwen2', 'gpt2']);
    expect(new Set(MODEL_TYPES).size).toBe(MODEL_TYPES.length);
  });

  it('GQA Llama: q/o are heads x head_dim wide, k/v kv-heads x head_dim (stories260K: 8 heads, 4 kv, d 8)', () => {
    expect(moduleShapes(stories260K)[0]).toEqual({
      'self_attn.q_proj': { in: 64, out: 64 }, 'self_attn.k_proj': { in: 64, out: 32 }, 'self_attn.v_proj': { in: 64, out: 32 },
      'self_attn.o_proj': { in: 64, out: 64 }, 'mlp.gate_proj': { in: 64, out: 172 }, 'mlp.up_proj': { in: 64, out: 172 },
      'mlp.down_proj': { in: 172, out: 64 },
    });
    expect(layerPrefix(stories260K, 3)).toBe('model.layers.3');
  });

  it('GPT-2: the fused c_attn is [H, 3H], the MLP [H, 4H] and back', () => {
    expect(moduleShapes(gpt2)[11]).toEqual({
      'attn.c_attn': { in: 768, out: 2304 }, 'attn.c_proj': { in: 768, out: 768 }, 'mlp.c_fc': { in: 768, out: 3072 }, 'mlp.c_proj': { in: 3072, out: 768 },
    });
    expect(projectionPaths(gpt2)).toEqual(['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj']);
    expect(layerPrefix(gpt2, 0)).toBe('transformer.h.0');
  });

  it.each([
    ['stories260K', stories260K, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']],
    ['gpt2', gpt2, ['c_attn', 'c_proj', 'c_fc']],
  ] as const)('%s: the default adapter targets are the family\'s and select every projection, each target one at least', (_n, c, want) => {
    expect(defaultTargets(c)).toEqual(want);
    const paths = projectionPaths(c);
    expect(paths.filter((p) => defaultTargets(c).some((t) => targetMatches(t, p)))).toEqual(paths);
    for (const t of defaultTargets(c)) expect(paths.some((p) => targetMatches(t, p))).toBe(true);
  });

  it.each([['stories260K', stories260K], ['gpt2', gpt2], ['qwen2.5-0.5b', normaliseConfig(REAL_SHAPES['qwen2.5-0.5b'])]] as const)(
    '%s: the weight specs hold exactly the projections of every layer, in the family layout', (_n, c) => {
      const f = familyOf(c);
      const adaptable = f.weightSpecs(c).filter((s) => s.adaptable);
      const want = moduleShapes(c).flatMap((mods, l) => Object.entries(mods).map(([p, s]) => ({
        name: `${layerPrefix(c, l)}.${p}.weight`, shape: f.projectionLayout === 'conv1d' ? [s.in, s.out] : [s.out, s.in],
      })));
      expect(adaptable.map((s) => ({ name: s.name, shape: s.shape }))).toEqual(want);
    });

  it('Qwen2 has q/k/v biases and no o_proj bias; Llama follows attention_bias for all four', () => {
    const qwen = normaliseConfig(REAL_SHAPES['qwen2.5-0.5b']);
    const biases = (c: typeof qwen) => familyOf(c).weightSpecs(c).filter((s) => s.name.startsWith('model.layers.0.self_attn') && s.name.endsWith('.bias')).map((s) => s.name);
    expect(biases(qwen)).toEqual(['q_proj', 'k_proj', 'v_proj'].map((p) => `model.layers.0.self_attn.${p}.bias`));
    expect(biases({ ...stories260K, attentionBias: true, attentionOutputBias: undefined })).toHaveLength(4);
    expect(biases(stories260K)).toEqual([]);
  });

  it('file spellings: GPT-2 files may drop `transformer.` and carry mask buffers; Llama drops rotary buffers and a tied head copy', () => {
    expect(FAMILIES.gpt2.storedNames('transformer.h.0.attn.c_attn.weight')).toEqual(['transformer.h.0.attn.c_attn.weight', 'h.0.attn.c_attn.weight']);
    expect(FAMILIES.gpt2.tensorName('h.0.attn.bias', gpt2)).toBeNull();
    expect(FAMILIES.gpt2.tensorName('h.0.attn.c_attn.bias', gpt2)).toBe('transformer.h.0.attn.c_attn.bias');
    expect(FAMILIES.llama.tensorName('model.layers.0.self_attn.rotary_emb.inv_freq', stories260K)).toBeNull();
    expect(FAMILIES.llama.tensorName('lm_head.weight', { ...stories260K, tieWordEmbeddings: true })).toBeNull();
    expect(FAMILIES.llama.tensorName('lm_head.weight', { ...stories260K, tieWordEmbeddings: false })).toBe('lm_head.weight');
  });

  it('base parameters: GPT-2 small is 124,439,808 (HF num_parameters), its embedding 50257 x 768', () => {
    expect(baseParams(gpt2)).toEqual({ total: 124_439_808, embedding: 50257 * 768 });
  });
});
