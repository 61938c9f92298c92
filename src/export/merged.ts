/**
 * The merged export: the base model's HF tensors with every adapted module's ΔW (PEFT's
 * get_delta_weight, delta.ts) added to its weight, ready to be built or saved as a plain model.
 */
import { floatsOf, type AnyTensorData } from '../model/causal-lm.ts';
import type { CausalLM } from '../model/types.ts';
import { encodeShared } from '../ops/stored.ts';
import { addDelta, loraDeltaWeight } from './delta.ts';
import type { PeftModule } from './peft.ts';

/**
 * HF-named base tensors (host data, model.hostTensors()) with the modules' LoRA folded into their
 * weights. A weight held outside the engine stays in its dtype: the merged values (summed in
 * float32) are rounded to it, as merge_and_unload on a bf16 model keeps bf16; every weight no
 * module touches is the base's own bytes, shared, so the merged model costs the adapted matrices.
 */
export function mergedTensors(model: CausalLM, modules: readonly PeftModule[]): Map<string, AnyTensorData> {
  const out = model.hostTensors();
  for (const m of modules) {
    const name = `${m.path}.weight`;
    const w = out.get(name);
    const base = model.baseModules.get(m.path);
    if (!w || !base || w.shape.length !== 2 || ('data' in w && !(w.data instanceof Float32Array))) throw new Error(`internal: no float weight ${name} to merge into`);
    const shape: [number, number] = [w.shape[0], w.shape[1]];
    const merged = addDelta({ shape, data: floatsOf(w) }, loraDeltaWeight(m.A, m.B, m.scaling, base.hfLayout === 'conv1d')).data;
    out.set(name, 'data' in w ? { shape: w.shape, data: merged } : { shape: w.shape, dtype: w.dtype, bytes: encodeShared(merged, w.dtype) });
  }
  return out;
}
