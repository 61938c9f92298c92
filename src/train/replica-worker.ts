/**
 * One data-parallel replica, in a worker thread started by src/train/replicas.ts: build the
 * model the spec describes, then for each shard it is sent take the latest parameters from
 * its shared buffer (when they changed), compute the shard's weighted gradients and write them
 * over the parameters there.
 */
import * as tf from '@tensorflow/tfjs';
import { parentPort, workerData } from 'node:worker_threads';
import { injectAdapters } from '../adapters/inject.ts';
import { initBackend } from '../backend/index.ts';
import { createRandomModel } from '../model/init.ts';
import { loadModel } from '../model/load.ts';
import type { CausalLM } from '../model/types.ts';
import { hostValuesOp } from '../ops/host-values.ts';
import { layoutOf, type FromWorker, type ReplicaInit, type ReplicaSpec, type ToWorker } from './replicas.ts';
import { rowNll } from './evaluate.ts';
import { microBatchGradients } from './step.ts';

async function build(spec: ReplicaSpec): Promise<{ model: CausalLM; trainables: Map<string, tf.Variable> }> {
  await initBackend(spec.backend, { singleThreaded: true });
  const model = 'dir' in spec.model
    ? await loadModel(spec.model.dir, { trainable: spec.trainable, storage: spec.model.storage, shared: spec.model.shared })
    : createRandomModel(spec.model.config, spec.model.seed, { trainable: spec.trainable });
  const adapters = spec.adapters ? injectAdapters(model, spec.adapters.plan, spec.adapters.options) : null;
  return { model, trainables: adapters ? adapters.variables : model.weights };
}

async function serve(init: ReplicaInit, port: NonNullable<typeof parentPort>): Promise<void> {
  const send = (m: FromWorker) => port.postMessage(m);
  let built: Awaited<ReturnType<typeof build>>;
  try {
    built = await build(init.spec);
    const mine = JSON.stringify(layoutOf(built.trainables));
    if (mine !== JSON.stringify(init.layout)) throw new Error(`its trainables ${mine.slice(0, 200)} differ from the main thread's ${JSON.stringify(init.layout).slice(0, 200)}`);
  } catch (e) {
    send({ type: 'error', id: null, message: (e as Error).message });
    return;
  }
  const { model, trainables } = built;
  const { valuesOf, tensorFrom, writableInPlace } = hostValuesOp.impl(); // the backend build() initialised
  const vars = [...trainables.values()];
  // one buffer both ways: the parameters in when their version changed, the gradients out
  const params = new Float32Array(init.shared);
  const grads = params;
  let version = -1;
  send({ type: 'ready', tensors: tf.memory().numTensors });

  port.on('message', async (m: ToWorker) => {
    if (m.type === 'close') {
      port.close();
      return;
    }
    try {
      if (m.paramsVersion !== version) {
        let offset = 0;
        for (const [name, size] of init.layout) {
          // in place where nothing else reads the data and nothing is kept by its data id; else
          // an assign: a new data id, so nothing cached by the old one (XNNPACK's packed weights,
          // kept transposes) outlives the values
          const v = trainables.get(name)!;
          const values = params.subarray(offset, offset + size);
          if (writableInPlace(v)) valuesOf(v).set(values);
          else tf.tidy(() => v.assign(tensorFrom(values, v.shape)));
          offset += size;
        }
        version = m.paramsVersion;
      }
      if (m.type === 'score') {
        const nll = await rowNll(model, m.batch);
        send({ type: 'score', id: m.id, nll, tensors: tf.memory().numTensors });
        return;
      }
      const { loss, grads: g } = await microBatchGradients(model, vars, m.shard.micro, { weight: m.shard.weight, seedParts: m.seedParts, checkpointLayers: init.spec.checkpointLayers });
      let offset = 0;
      for (const [name, size] of init.layout) {
        const t = g[trainables.get(name)!.name];
        if (t) grads.set(valuesOf(t), offset);
        else grads.fill(0, offset, offset + size); // not reached by this loss: a zero gradient
        offset += size;
      }
      tf.dispose(g);
      send({ type: 'grad', id: m.id, loss, tensors: tf.memory().numTensors });
    } catch (e) {
      send({ type: 'error', id: m.id, message: (e as Error).message });
    }
  });
}

if (parentPort && (workerData as ReplicaInit | undefined)?.spec) await serve(workerData as ReplicaInit, parentPort);
