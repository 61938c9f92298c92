/**
 * Shapes of every adaptable linear, computed from the config alone (no weights needed), so
 * planning and parameter counting work for models that are not on disk (e.g. Llama-2-7B).
 */
import type { ModelConfig } from './types.ts';

export interface LinearShape {
  in: number;
  out: number;
}

/** Per layer: in-layer module path (e.g. `self_attn.q_proj`, `attn.c_attn`) -> shape. */
export type ModuleShapes = Array<Record<string, LinearShape>>;

/** HF path prefix of decoder layer `l`. */
export function layerPrefix(config: Pick<ModelConfig, 'arch'>, l: number): string {
  return config.arch === 'gpt2' ? `transformer.h.${l}` : `model.layers.${l}`;
}

export function moduleShapes(c: ModelConfig): ModuleShapes {
  const layers: ModuleShapes = [];
  for (let l = 0; l < c.numLayers; l++) {
    if (c.arch === 'gpt2') {
      layers.push({
        'attn.c_attn': { in: c.hiddenSize, out: 3 * c.hiddenSize },
        'attn.c_proj': { in: c.hiddenSize, out: c.hiddenSize },
        'mlp.c_fc': { in: c.hiddenSize, out: c.intermediateSize },
        'mlp.c_proj': { in: c.intermediateSize, out: c.hiddenSize },
      });
    } else {
      const q = c.numHeads * c.headDim;
      const kv = c.numKvHeads * c.headDim;
      layers.push({
        'self_attn.q_proj': { in: c.hiddenSize, out: q },
        'self_attn.k_proj': { in: c.hiddenSize, out: kv },
        'self_attn.v_proj': { in: c.hiddenSize, out: kv },
        'self_attn.o_proj': { in: q, out: c.hiddenSize },
        'mlp.gate_proj': { in: c.hiddenSize, out: c.intermediateSize },
        'mlp.up_proj': { in: c.hiddenSize, out: c.intermediateSize },
        'mlp.down_proj': { in: c.intermediateSize, out: c.hiddenSize },
      });
    }
  }
  return layers;
}

/**
 * Does target `t` (PEFT style: a short name like `q_proj` or a dotted suffix like
 * `attn.c_proj`) select the in-layer module path `path`?
 */
export function targetMatches(t: string, path: string): boolean {
  return path === t || path.endsWith(`.${t}`);
}
