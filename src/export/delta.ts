/**
 * PEFT's get_delta_weight as a pure function over HF-layout arrays: the one merge rule that the
 * PEFT export, the merged export and the tests' expectations all share.
 *
 *   ΔW = scaling · B A            [out, r] x [r, in] -> [out, in]   (nn.Linear layout)
 *   ΔW = scaling · (B A)ᵀ         [in, out]                          (GPT-2 Conv1D, fan_in_fan_out)
 */

/** A 2-D float tensor in row-major HF layout. */
export interface Matrix {
  shape: [number, number];
  data: Float32Array;
}

/** scaling · B·A in the base weight's layout; A [r, in], B [out, r]. */
export function loraDeltaWeight(A: Matrix, B: Matrix, scaling: number, fanInFanOut: boolean): Matrix {
  const [r, din] = A.shape;
  const [dout, rb] = B.shape;
  if (rb !== r) throw new Error(`loraDeltaWeight: lora_B [${B.shape}] does not fit lora_A [${A.shape}]`);
  // accumulate in float64: the merged export must equal the adapter's float32 forward to ~1e-7
  const acc = new Float64Array(dout * din);
  for (let o = 0; o < dout; o++) {
    for (let k = 0; k < r; k++) {
      const b = B.data[o * r + k];
      if (b === 0) continue;
      const row = k * din;
      const at = o * din;
      for (let i = 0; i < din; i++) acc[at + i] += b * A.data[row + i];
    }
  }
  const data = new Float32Array(dout * din);
  if (!fanInFanOut) {
    for (let j = 0; j < data.length; j++) data[j] = scaling * acc[j];
    return { shape: [dout, din], data };
  }
  for (let o = 0; o < dout; o++) for (let i = 0; i < din; i++) data[i * dout + o] = scaling * acc[o * din + i];
  return { shape: [din, dout], data };
}

/** W + ΔW, a new array (shapes must agree). */
export function addDelta(weight: Matrix, delta: Matrix): Matrix {
  if (weight.shape[0] !== delta.shape[0] || weight.shape[1] !== delta.shape[1]) {
    throw new Error(`addDelta: weight [${weight.shape}] and delta [${delta.shape}] differ`);
  }
  const data = new Float32Array(weight.data.length);
  for (let j = 0; j < data.length; j++) data[j] = weight.data[j] + delta.data[j];
  return { shape: weight.shape, data };
}
