// Preloaded with `node --import` by cli.test.ts: any attempt to load TensorFlow.js, through ESM
// import or CommonJS require, fails loudly, proving a command never touches it.
import Module, { register } from 'node:module';

const hook = `export async function resolve(specifier, context, next) {
  if (specifier.includes('@tensorflow')) throw new Error('BLOCKED tfjs import: ' + specifier);
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hook)}`);

const load = Module._load;
Module._load = function (request, ...rest) {
  if (request.includes('@tensorflow')) throw new Error(`BLOCKED tfjs require: ${request}`);
  return load.call(this, request, ...rest);
};
