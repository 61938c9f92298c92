/**
 * An int32-correct Transpose for tfjs-backend-webgpu 4.22. Its TransposeProgram writes
 * `setOutputAtIndex(i, A[...])`, whose value parameter is f32; with an int32 input A is
 * array<i32>, Dawn rejects the WGSL ("expected 'f32', got 'i32'"), the dispatch is dropped
 * and the result reads as zeros. Token ids and position ids are int32 and get transposed
 * (e.g. by gather gradients and batch reshapes), so the override matters for real models.
 * Float transposes keep tfjs's own kernels.
 */
import type * as TF from '@tensorflow/tfjs';
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

const XYZ = ['x', 'y', 'z', 'w', 'u', 'v'];

/** WGSL type tfjs uses for coordinates of a given rank (its getCoordsDataType). */
function coordsType(rank: number): string {
  if (rank <= 1) return 'i32';
  if (rank <= 4) return `vec${rank}<i32>`;
  return `vec${rank}`; // tfjs declares vec5/vec6 structs in every shader
}

/** One thread per output element: out[coords] = A[coords permuted back]. */
class IntTransposeProgram implements WebGPUProgram {
  variableNames = ['A'];
  workgroupSize: [number, number, number] = [64, 1, 1];
  size = true;
  outputShape: number[];
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  shaderKey: string;
  private perm: number[];

  constructor(util: typeof import('@tensorflow/tfjs-backend-webgpu').webgpu_util, xShape: number[], perm: number[]) {
    this.outputShape = perm.map((p) => xShape[p]);
    this.dispatchLayout = util.flatDispatchLayout(this.outputShape);
    this.dispatch = util.computeDispatch(this.dispatchLayout, this.outputShape, this.workgroupSize);
    this.perm = perm;
    this.shaderKey = `hilo_int_transpose_${perm}`;
  }

  getUserCode(): string {
    const rank = this.outputShape.length;
    // Input coordinate perm[i] is output coordinate i.
    const inCoords = new Array<string>(rank);
    this.perm.forEach((p, i) => (inCoords[p] = `coords.${XYZ[i]}`));
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let coords = getCoordsFromIndex(index);
          setOutputAtIndexI32(index, A[getIndexFromCoords${rank}D(${coordsType(rank)}(${inCoords.join(', ')}), uniforms.aShape)]);
        }
      }
    `;
  }
}

let installed = false;

/** Replace the webgpu Transpose kernel once per process; int32/bool go through IntTransposeProgram. */
export function installIntTranspose(
  tf: typeof TF,
  util: typeof import('@tensorflow/tfjs-backend-webgpu').webgpu_util,
): void {
  if (installed) return;
  const original = tf.getKernel('Transpose', 'webgpu');
  if (!original) throw new Error('tfjs-backend-webgpu registered no Transpose kernel');
  tf.unregisterKernel('Transpose', 'webgpu');
  tf.registerKernel({
    ...original,
    kernelFunc: (args) => {
      const x = args.inputs.x as TF.TensorInfo;
      const perm = args.attrs!.perm as number[];
      const backend = args.backend as WebGPUBackend;
      if (x.dtype === 'float32' || x.shape.length < 2 || backend.shouldExecuteOnCPU([x])) {
        return original.kernelFunc(args);
      }
      return backend.runWebGPUProgram(new IntTransposeProgram(util, x.shape, perm), [x], x.dtype);
    },
  });
  installed = true;
}
