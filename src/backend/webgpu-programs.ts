/**
 * The GPU programs hilo adds to tfjs-backend-webgpu (webgpu-adamw.ts, webgpu-router.ts,
 * webgpu-layer-norm.ts, webgpu-token-nll.ts): plain one-dimensional dispatches of `threads`
 * threads, each writing whatever outputs it owns, or of one workgroup per row where a row's
 * reduction is long enough to share; their constants are uniforms so one compiled shader serves
 * every call.
 */
import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

export type WebGPUUtil = typeof import('@tensorflow/tfjs-backend-webgpu').webgpu_util;

/**
 * A program of `threads` threads (elements, rows or columns), writing `outputShape` however it
 * likes. Its `uniforms` must begin with `threads : i32,` and its uniform data with i32(threads):
 * threads past that return at once.
 */
export class ThreadProgram implements WebGPUProgram {
  workgroupSize: [number, number, number] = [64, 1, 1];
  outputShape: number[];
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];

  constructor(
    util: WebGPUUtil,
    readonly variableNames: string[],
    outputShape: number[],
    threads: number,
    readonly uniforms: string,
    readonly shaderKey: string,
    private readonly body: string,
    private readonly helpers = '',
  ) {
    this.outputShape = outputShape;
    this.dispatchLayout = util.flatDispatchLayout([threads]);
    this.dispatch = util.computeDispatch(this.dispatchLayout, [threads], this.workgroupSize);
  }

  getUserCode(): string {
    return `${this.helpers}
      fn main(index : i32) {
        if (index < uniforms.threads) {
          ${this.body}
        }
      }
    `;
  }
}

/**
 * A program of one workgroup of `width` threads (a power of two) per row of `rows`, writing
 * `outputShape` however it likes. Its `uniforms` must begin with `rows : i32,` and its uniform
 * data with i32(rows). The body sees `row` (clamped to the last row: tfjs may dispatch a few
 * workgroups more than asked, in 2-D, past the per-dimension limit), `live` (false in those extra
 * workgroups, which must write nothing), `lane` (0 .. width-1) and `W` (width), and reduces
 * across the workgroup with the `reductions` it names (reduction() below). Every thread must
 * reach every reduction: WGSL allows a barrier only where the whole workgroup goes, so a body
 * never returns early and only branches around code without one.
 */
export class RowProgram implements WebGPUProgram {
  workgroupSize: [number, number, number];
  outputShape: number[];
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];

  constructor(
    util: WebGPUUtil,
    readonly variableNames: string[],
    outputShape: number[],
    rows: number,
    width: number,
    readonly uniforms: string,
    readonly shaderKey: string,
    private readonly body: string,
    private readonly helpers: string,
  ) {
    this.workgroupSize = [width, 1, 1];
    this.outputShape = outputShape;
    this.dispatchLayout = util.flatDispatchLayout([rows]);
    this.dispatch = util.computeDispatch(this.dispatchLayout, [rows], [1, 1, 1]);
  }

  getUserCode(): string {
    return `${this.helpers}
      fn main(index : i32) {
        let W = ${this.workgroupSize[0]};
        let wg = i32(workgroupId.x + numWorkgroups.x * (workgroupId.y + numWorkgroups.y * workgroupId.z));
        let live = wg < uniforms.rows;
        let row = min(wg, uniforms.rows - 1);
        let lane = i32(localIndex);
        ${this.body}
      }
    `;
  }
}

/**
 * WGSL for `fn name(v : vec2<f32>) -> vec2<f32>`: `combine` (an expression of vec2s a and b)
 * folded over the workgroup's `width` values, returned to every thread. A tree, so a sum's
 * float32 error grows with log(width) rather than width.
 */
export const reduction = (name: string, width: number, combine: string) => `
  var<workgroup> ${name}_part : array<vec2<f32>, ${width}>;
  fn ${name}(v : vec2<f32>) -> vec2<f32> {
    ${name}_part[localIndex] = v;
    workgroupBarrier();
    for (var half = ${width / 2}u; half > 0u; half = half / 2u) {
      if (localIndex < half) {
        let a = ${name}_part[localIndex];
        let b = ${name}_part[localIndex + half];
        ${name}_part[localIndex] = ${combine};
      }
      workgroupBarrier();
    }
    let total = ${name}_part[0];
    workgroupBarrier(); // every thread has read the total before the next call writes the array
    return total;
  }
`;

/** A uniform's value for runWebGPUProgram. */
export const i32 = (x: number) => ({ type: 'int32', data: [x] });
export const f32 = (x: number) => ({ type: 'float32', data: [x] });
