import { initBackend } from '../src/backend/index.ts';
console.log('start');
const info = await initBackend('wasm');
console.log(info.detail);
const tf = await import('@tensorflow/tfjs');
const a = tf.randomNormal([1024,256]), b = tf.randomNormal([256,4096]);
for (let r=0;r<3;r++){ const t=performance.now(); for(let i=0;i<10;i++){ const c=tf.matMul(a,b); await c.data(); c.dispose(); } const ms=(performance.now()-t)/10; console.log(ms.toFixed(1),'ms', (2*1024*256*4096/ms/1e6).toFixed(1),'GFLOP/s'); }
