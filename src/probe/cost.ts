/**
 * What a probe costs, in the terms `hilo plan` and `hilo probe` state it: how many passes or
 * matrices, over how many calibration tokens, and about how many floating-point operations.
 * Estimates from shapes alone (pure functions), so a plan says the price before a data probe
 * on a big model is run again.
 */
import { moduleShapes } from '../model/families.ts';
import type { ModelConfig } from '../model/types.ts';
import { matrixCost } from './alpha-hill-dir.ts';
import { layersPerForward, passTokens } from './passes.ts';
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

/** One line: what `kind` measured (or would measure) on `config`, with passes of at most `maxTokensPerPass` tokens. */
export function probeCost(kind: ProbeKind, config: ModelConfig, calibration?: CalibrationSize, maxTokensPerPass = passTokens()): string {
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
  const layerMacs = moduleShapes({ ...config, numLayers: 1 }).reduce((a, mods) => a + Object.values(mods).reduce((b, s) => b + s.in * s.out, 0), 0);
  const forward = 2 * forwardMacsPerToken(config) * tokens; // FLOP of one forward over all calibration tokens
  const data = `${batches} calibration batch${batches === 1 ? '' : 'es'} (${tokens.toLocaleString('en-US')} tokens) in passes of at most ${maxTokensPerPass.toLocaleString('en-US')} tokens`;
  if (kind === 'grad-sensitivity') {
    // one backward per pass gives every module's dL/dW: forward, dx and dW ~ 3 forwards
    return `grad-sensitivity: one forward+backward per pass over ${data}, every layer's weight gradients from each; about ${flopText(3 * forward)}`;
  }
  // a group of layers' Grams per forward, which stops after the group's last layer
  const d = Object.values(shapes[0])[0].in;
  const group = layersPerForward(d, L);
  let layersRun = 0;
  for (let first = 0; first < L; first += group) layersRun += Math.min(L, first + group) - 1; // stops at the group's last input
  const groups = Math.ceil(L / group);
  const flop = 2 * layerMacs * layersRun * tokens + d * d * tokens * L; // the layers run, then the Grams (symmetric)
  return `activation-rank: ${groups === 1 ? 'one forward' : `${groups} forwards (${group} layers' Grams each)`} over ${data}, ${L} Gram matrices of width ${d}; about ${flopText(flop)}`;
}
