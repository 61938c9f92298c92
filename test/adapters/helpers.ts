/**
 * Test doubles: a frozen linear and a tiny Llama-shaped CausalLM whose forward runs every
 * module of every layer, so injection can be tested without model files.
 */
import * as tf from '@tensorflow/tfjs';
import { layerPrefix, moduleShapes } from '../../src/model/shapes.ts';
import type { CausalLM, FrozenLinear, ForwardContext, ModelConfig } from '../../src/model/types.ts';

export function frozenLinear(name: string, din: number, dout: number, seed: number): FrozenLinear {
  const kernel = tf.variable(tf.randomNormal([din, dout], 0, 0.3, 'float32', seed), false);
  return {
    name,
    kernel,
    bias: null,
    hfLayout: 'linear',
    inFeatures: din,
    outFeatures: dout,
    forward: (x) => tf.matMul(x, kernel),
  };
}

export const TOY_CONFIG: ModelConfig = {
  arch: 'llama', modelType: 'llama', vocabSize: 11, hiddenSize: 8, numLayers: 2, numHeads: 2, numKvHeads: 2, headDim: 4,
  intermediateSize: 12, maxPositions: 16, tieWordEmbeddings: true, ropeTheta: 1e4, ropeScaling: null, rmsNormEps: 1e-5,
  attentionBias: false, mlpBias: false, hiddenAct: 'silu', layerNormEps: 1e-5, scaleAttnByInverseLayerIdx: false,
  bosTokenId: null, eosTokenId: null, padTokenId: null,
};

/** Not a transformer: each layer mixes its seven projections residually, enough to route through all of them. */
export function toyModel(config: ModelConfig = TOY_CONFIG): CausalLM {
  const modules = new Map<string, FrozenLinear>();
  const weights = new Map<string, tf.Variable>();
  let seed = 1;
  moduleShapes(config).forEach((layer, l) => {
    for (const [p, s] of Object.entries(layer)) {
      const name = `${layerPrefix(config, l)}.${p}`;
      const m = frozenLinear(name, s.in, s.out, seed++);
      modules.set(name, m);
      weights.set(`${name}.weight`, m.kernel);
    }
  });
  const embed = tf.variable(tf.randomNormal([config.vocabSize, config.hiddenSize], 0, 1, 'float32', 99), false);
  weights.set('model.embed_tokens.weight', embed);
  const live = new Map<string, FrozenLinear | import('../../src/model/types.ts').LinearModule>(modules);
  return {
    config,
    modules: live,
    baseModules: modules,
    weights,
    forward(ids, opts) {
      const ctx: ForwardContext | undefined = opts?.ctx;
      return tf.tidy(() => {
        const [B, T] = ids.shape;
        let h = tf.gather(embed, tf.reshape(ids, [-1])) as tf.Tensor2D; // [B·T, H]
        for (let l = 0; l < config.numLayers; l++) {
          const m = (p: string, x: tf.Tensor2D) => live.get(`${layerPrefix(config, l)}.${p}`)!.forward(x, ctx);
          const att = tf.add(tf.mul(tf.tanh(m('self_attn.q_proj', h)), m('self_attn.k_proj', h)), m('self_attn.v_proj', h)) as tf.Tensor2D;
          h = tf.add(h, m('self_attn.o_proj', att));
          const mlp = tf.mul(tf.sigmoid(m('mlp.gate_proj', h)), m('mlp.up_proj', h)) as tf.Tensor2D;
          h = tf.add(h, m('mlp.down_proj', mlp));
        }
        return tf.reshape(tf.matMul(h, tf.transpose(embed)), [B, T, config.vocabSize]) as tf.Tensor3D;
      });
    },
    hfTensors: () => new Map(weights),
    dispose: () => {
      for (const w of weights.values()) w.dispose();
    },
  };
}

/** A ForwardContext whose dropout seeds count up from `start`. */
export function seededContext(training: boolean, start = 0, extra: Partial<ForwardContext> = {}): ForwardContext {
  let s = start;
  return { training, auxLosses: [], dropoutSeed: { next: () => s++ }, ...extra };
}
