/**
 * Gradients with a backward pass that frees as it goes, and gradients taken again inside a
 * backward pass (what gradient checkpointing and the chunked cross-entropy do with the parts of
 * the forward they dropped).
 *
 * tfjs's engine.gradients keeps every tensor the tape saved and every gradient it computed until
 * the whole backward pass ends. The tape is in forward order, so walking it backwards, a node's
 * output gradients are complete when the node is reached and nothing reads them, or the tensors
 * the node saved, once it is done. leanGradients runs the same gradient functions in the same
 * order (the same numbers, bit for bit) and frees the gradients there, and with `freeSaved` the
 * saved tensors too: a pass holds the saved tensors of the nodes not yet reached and the
 * gradients at its frontier, not the whole tape's of both.
 *
 * Saved tensors are freed only where asked: some gradient functions read, from their closure, a
 * tensor of the forward that no node saved (a mask, a RoPE table's view), alive only while
 * another node's saved copy shares its data. Inside a checkpointed layer's recomputation those
 * are the layer's saved inputs, which outlive the inner pass; over a whole model's tape they are
 * not, so a plain (not checkpointed) pass frees only gradients.
 *
 * tfjs's engine.gradients also assumes it is the outermost: when it ends at gradient depth 0 it
 * frees its tape and clears the engine's active tape, which the backward pass it runs inside still
 * needs to free its own saved tensors at the end. So the outer tape is put back after each inner
 * pass (recomputeGrads).
 */
import * as tf from '@tensorflow/tfjs';

/** A node of tfjs's gradient tape (tfjs-core tape.ts TapeNode). */
interface TapeNode {
  id: number;
  kernelName: string;
  outputs: tf.Tensor[];
  inputs: tf.NamedTensorMap;
  gradient?: (dys: Array<tf.Tensor | null>) => Record<string, () => tf.Tensor>;
  saved?: tf.Tensor[];
}

/** The parts of tfjs's Engine that engine.gradients is made of (private in its types). */
interface EngineTape {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  startTape(): void;
  endTape(): void;
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  tidy<T extends tf.TensorContainer>(name: string, f: () => T): T;
}

const engineTape = () => tf.engine() as unknown as EngineTape;

/**
 * The nodes on a path from `xs` to `y`, in tape order, each with only the inputs that come from
 * xs (tfjs-core tape.ts getFilteredNodesXToY).
 */
function nodesFromXToY(tape: TapeNode[], xs: tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set(xs.map((x) => x.id));
  const nodeFromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((t) => fromX.has(t.id))) {
      for (const o of node.outputs) fromX.add(o.id);
      nodeFromX.add(node.id);
    }
  }
  const toY = new Set([y.id]);
  const nodeToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    if (node.outputs.some((o) => toY.has(o.id))) {
      for (const t of Object.values(node.inputs)) toY.add(t.id);
      nodeToY.add(node.id);
    }
  }
  return tape.filter((n) => nodeFromX.has(n.id) && nodeToY.has(n.id)).map((n) => ({
    ...n, inputs: Object.fromEntries(Object.entries(n.inputs).filter(([, t]) => fromX.has(t.id))),
  }));
}

/**
 * tfjs-core tape.ts backpropagateGradients, freeing as it goes: after node i, its outputs'
 * gradients and (with `freeSaved`) its saved tensors. A gradient tensor may sit under several
 * ids (a gradient function may hand dy on as it is): it is disposed when no id holds it, and
 * never when it is in `keep` (the caller's dy).
 */
function backprop(acc: Map<number, tf.Tensor>, nodes: TapeNode[], keep: ReadonlySet<tf.Tensor>, freeSaved: boolean): void {
  const holders = new Map<tf.Tensor, number>();
  const hold = (t: tf.Tensor) => holders.set(t, (holders.get(t) ?? 0) + 1);
  const release = (t: tf.Tensor) => {
    const n = (holders.get(t) ?? 0) - 1;
    if (n > 0) holders.set(t, n);
    else {
      holders.delete(t);
      if (!keep.has(t)) t.dispose();
    }
  };
  for (const t of acc.values()) hold(t);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    const dys = node.outputs.map((o) => acc.get(o.id) ?? null);
    if (!node.gradient) throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
    const inputGradients = node.gradient(dys);
    for (const name in node.inputs) {
      if (!(name in inputGradients)) throw new Error(`Cannot backprop through input ${name}. Available gradients found: ${Object.keys(inputGradients)}.`);
      const dx = tf.tidy(() => inputGradients[name]());
      const x = node.inputs[name];
      if (dx.dtype !== 'float32') throw new Error(`Error in gradient for op ${node.kernelName}. The gradient of input ${name} must have 'float32' dtype, but has '${dx.dtype}'`);
      if (!tf.util.arraysEqual(dx.shape, x.shape)) {
        throw new Error(`Error in gradient for op ${node.kernelName}. The gradient of input '${name}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`);
      }
      const current = acc.get(x.id);
      if (!current) {
        acc.set(x.id, dx);
        hold(dx);
        continue;
      }
      const sum = tf.add(current, dx);
      acc.set(x.id, sum);
      hold(sum);
      release(current);
      if (!holders.has(dx) && !keep.has(dx)) dx.dispose();
    }
    for (const o of node.outputs) {
      const g = acc.get(o.id);
      if (!g) continue;
      acc.delete(o.id);
      release(g);
    }
    if (freeSaved) for (const t of node.saved ?? []) t.dispose();
  }
}

/**
 * tfjs's engine.gradients(f, xs, dy, true) with the lean backward above: y = f() and ∂<y, dy>/∂xs
 * (dy defaults to ones), null for an x that y does not depend on.
 */
export function leanGradients(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor, freeSaved = false): { value: tf.Tensor; grads: Array<tf.Tensor | null> } {
  const engine = engineTape();
  if (dy && dy.dtype !== 'float32') throw new Error(`dy must have 'float32' dtype, but has '${dy.dtype}'`);
  const y = engine.scopedRun(() => engine.startTape(), () => engine.endTape(), () => engine.tidy('forward', f));
  const tape = engine.state.activeTape ?? [];
  const nodes = nodesFromXToY(tape, xs, y);
  return engine.tidy('backward', () => {
    const outermost = engine.state.gradientDepth === 0;
    if (outermost && freeSaved) {
      // nodes off every path from xs to y (a dropout mask's random draw, its floor and scale)
      // are never backpropagated: what they saved can go before the pass starts
      const onPath = new Set(nodes.map((n) => n.id));
      for (const node of tape) if (!onPath.has(node.id)) for (const t of node.saved ?? []) t.dispose();
    }
    const acc = new Map<number, tf.Tensor>([[y.id, dy ?? tf.onesLike(y)]]);
    backprop(acc, nodes, new Set(dy ? [dy] : []), outermost && freeSaved);
    const grads = xs.map((x) => acc.get(x.id) ?? null);
    if (outermost) {
      // not higher-order: the tape is done with (as tfjs's engine.gradients)
      for (const node of engine.state.activeTape ?? []) for (const t of node.saved ?? []) t.dispose();
      engine.state.activeTape = null;
    }
    return { value: y, grads } as unknown as tf.TensorContainer;
  }) as unknown as { value: tf.Tensor; grads: Array<tf.Tensor | null> };
}

/**
 * tf.variableGrads(f, vars) with the lean backward: the scalar f() and its gradient by variable
 * name for each trainable variable it reaches.
 */
export function leanVariableGrads(f: () => tf.Scalar, vars: tf.Variable[], freeSaved = false): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  const trainable = vars.filter((v) => v.trainable);
  if (trainable.length === 0) throw new Error(`variableGrads() expects at least one of the input variables to be trainable, but none of the ${vars.length} variables is trainable.`);
  const { value, grads } = leanGradients(f, trainable, undefined, freeSaved);
  if (!grads.some((g) => g !== null)) {
    tf.dispose(value);
    throw new Error('Cannot find a connection between any variable and the result of the loss function y=f(x).');
  }
  if (value.rank !== 0) throw new Error(`The f passed in variableGrads(f) must return a scalar, but it returned a rank-${value.rank} tensor`);
  const named: tf.NamedTensorMap = {};
  trainable.forEach((v, i) => {
    if (grads[i]) named[v.name] = grads[i]!;
  });
  return { value: value as tf.Scalar, grads: named };
}

/**
 * ∂<f(), dy>/∂xs: the vector-Jacobian product of f at the tensors `xs` it reads, with f run again
 * under its own tape, whose saved tensors go as the pass goes (everything f reads from outside
 * it, xs and the caller's saved tensors, outlives the pass). An x f does not reach gets zeros.
 */
export function recomputeGrads(f: () => tf.Tensor, xs: tf.Tensor[], dy: tf.Tensor): tf.Tensor[] {
  const state = engineTape().state;
  const outer = state.activeTape;
  try {
    const { value, grads } = leanGradients(f, xs, dy, true);
    value.dispose();
    return grads.map((g, i) => g ?? tf.zerosLike(xs[i]));
  } finally {
    state.activeTape = outer;
  }
}
