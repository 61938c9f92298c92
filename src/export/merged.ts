/**
 * The merged export: the base model's HF tensors with every adapted module's ΔW (PEFT's
 * get_delta_weight, delta.ts) added to its weight, ready to be built or saved as a plain model.
 */
import * as tf from '@tensorflow/tfjs';
import type { HfTensorData } from '../model/causal-lm.ts';
import type { CausalLM } from '../model/types.ts';
import { addDelta, loraDeltaWeight } from './delta.ts';
import type { PeftModule } from './peft.ts';

/** HF-named base tensors (host copies) with the modules' LoRA folded into their weights. */
export function mergedTensors(model: CausalLM, modules: readonly PeftModule[]): Map<string, HfTensorData> {
  const out = new Map<string, HfTensorData>();
  const tensors = model.hfTensors();
  try {
    for (const [name, t] of tensors) out.set(name, { shape: t.shape, data: t.dataSync() as Float32Array | Int32Array });
  } finally {
    tf.dispose([...tensors.values()]);
  }
  for (const m of modules) {
    const name = `${m.path}.weight`;
    const w = out.get(name);
    const base = model.baseModules.get(m.path);
    if (!w || !base || !(w.data instanceof Float32Array)) throw new Error(`internal: no float weight ${name} to merge into`);
    const delta = loraDeltaWeight(m.A, m.B, m.scaling, base.hfLayout === 'conv1d');
    out.set(name, { shape: w.shape, data: addDelta({ shape: [w.shape[0], w.shape[1]], data: w.data }, delta).data });
  }
  return out;
}
