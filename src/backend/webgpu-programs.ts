/**
 * The GPU programs hilo adds to tfjs-backend-webgpu (webgpu-adamw.ts, webgpu-router.ts): plain
 * one-dimensional dispatches of `threads` threads, each writing whatever outputs it owns, with
 * their constants as uniforms so one compiled shader serves every call.
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

/** A uniform's value for runWebGPUProgram. */
export const i32 = (x: number) => ({ type: 'int32', data: [x] });
export const f32 = (x: number) => ({ type: 'float32', data: [x] });
