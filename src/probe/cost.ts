/**
 * What a probe costs, in the terms `hilo plan` and `hilo probe` state it: how many passes or
 * matrices, over how many calibration tokens, and about how many floating-point operations.
 * Estimates from shapes alone (pure functions), so a plan says the price before a data probe
 * on a big model is run again.
 */
import { moduleShapes } from '../model/families.ts';
import type { ModelConfig } from '../model/types.ts';
import { matrixCost } from './alpha-hill-dir.ts';
import type { ProbeKind } from './types.ts';

/** Calibration data as probe settings record it (calibration.ts's digest). */
export interface CalibrationSize {
  batches: number;
  tokens: number;
}

/** Multiply-adds of one token through the decoder's linears and the LM head (attention scores left out). */
export function forwardMacsPerToken(config: ModelConfig): number {
  const linears = moduleShapes(config).reduce((a, mods) => a + Object.values(mods).reduce((b, s) => b + s.in * s.out, 0), 0);
  return linears + config.vocabSize * config.hiddenSize;
}

/** 1.2e12 -> "1.2 TFLOP", 2.7e8 -> "270 MFLOP". */
export function flopText(flop: number): string {
  const units: Array<[number, string]> = [[1e15, 'PFLOP'], [1e12, 'TFLOP'], [1e9, 'GFLOP'], [1e6, 'MFLOP']];
  const found = units.find(([s]) => flop >= s);
  if (!found) return `${Math.round(flop)} FLOP`;
  const [scale, unit] = found;
  const v = flop / scale;
  return `${v >= 10 ? Math.round(v) : v.toPrecision(2)} ${unit}`;
}

/** One line: what `kind` measured (or would measure) on `config`. */
export function probeCost(kind: ProbeKind, config: ModelConfig, calibration?: CalibrationSize): string {
  const L = config.numLayers;
  const shapes = moduleShapes(config);
  if (kind === 'depth') return 'depth: the layer index, nothing measured';
  if (kind === 'alpha-hill') {
    const all = shapes.flatMap((mods) => Object.values(mods));
    const widths = new Map<number, number>();
    for (const s of all) widths.set(Math.min(s.in, s.out), (widths.get(Math.min(s.in, s.out)) ?? 0) + 1);
    const flop = 2 * all.reduce((a, s) => a + matrixCost(s.in, s.out), 0);
    const list = [...widths].sort((a, b) => b[0] - a[0]).map(([w, n]) => `${n} of width ${w}`).join(', ');
    return `alpha-hill: ${all.length} weight matrices read one at a time, Gram matrices ${list}; about ${flopText(flop)}`;
  }
  const tokens = calibration?.tokens ?? 0;
  const batches = calibration?.batches ?? 0;
  const forward = 2 * forwardMacsPerToken(config) * tokens; // FLOP of one forward over all calibration tokens
  const data = `${batches} calibration batch${batches === 1 ? '' : 'es'} (${tokens.toLocaleString('en-US')} tokens)`;
  if (kind === 'grad-sensitivity') {
    // one backward per layer per batch (memory: one layer's gradients alive); a backward ~ 2 forwards
    return `grad-sensitivity: ${L * batches} forward+backward passes (one per layer per batch) over ${data}; at most ${flopText(3 * L * forward)}`;
  }
  const d = Object.values(shapes[0])[0].in;
  return `activation-rank: ${batches} forward pass${batches === 1 ? '' : 'es'} over ${data} and ${L} Gram matrices of width ${d}; about ${flopText(forward)}`;
}
