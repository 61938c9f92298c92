/**
 * The ops layer's kernel registry, tfjs's own idea one level up: each operation the method needs
 * is defined once with a reference implementation in plain tfjs ops (correct on any backend);
 * a backend may register a faster implementation of the same interface for itself, at start-up
 * (src/backend/). Method code asks the op, never the backend, which one to run; the parity tests
 * (test/ops/) run every registered implementation against the reference, forward and gradient.
 */
import * as tf from '@tensorflow/tfjs';

export interface Op<Impl> {
  /** The op's name, as tests and `hilo doctor` print it. */
  readonly name: string;
  /** Plain tfjs ops: the definition every implementation is tested against and falls back to. */
  readonly reference: Impl;
  /** Use `impl` while `backend` is active; null removes it (the reference again). */
  register(backend: string, impl: Impl | null): void;
  /** What `backend` registered, or undefined where it runs the reference. */
  registered(backend?: string): Impl | undefined;
  /** What runs on `backend`: its registration, else the reference. */
  impl(backend?: string): Impl;
  /** Every registration, as [backend, impl] pairs (for the parity tests). */
  implementations(): Array<[string, Impl]>;
}

const ops = new Map<string, Op<unknown>>();

/** Define an op once; a second definition under the same name is a programming error. */
export function defineOp<Impl>(name: string, reference: Impl): Op<Impl> {
  if (ops.has(name)) throw new Error(`op ${name} is defined twice`);
  const table = new Map<string, Impl>();
  const op: Op<Impl> = {
    name,
    reference,
    register(backend, impl) {
      if (impl) table.set(backend, impl);
      else table.delete(backend);
    },
    registered: (backend = tf.getBackend()) => table.get(backend),
    impl: (backend = tf.getBackend()) => table.get(backend) ?? reference,
    implementations: () => [...table.entries()],
  };
  ops.set(name, op as Op<unknown>);
  return op;
}

/** Every defined op with the backends that registered an implementation of it. */
export function opTable(): Array<{ name: string; backends: string[] }> {
  return [...ops.values()].map((op) => ({ name: op.name, backends: op.implementations().map(([b]) => b) }));
}
