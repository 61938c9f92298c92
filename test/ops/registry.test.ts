/** The ops registry (src/ops/registry.ts): a backend's registration wins while it is active, the reference elsewhere. */
import { describe, expect, it } from 'vitest';
import { defineOp, opTable } from '../../src/ops/registry.ts';
import { frozenLinearOp, referenceFrozenLinear } from '../../src/ops/frozen-linear.ts';

describe('ops registry', () => {
  it('runs a backend\'s registration on that backend and the reference on others', () => {
    const op = defineOp<{ f: () => string }>('test-op', { f: () => 'reference' });
    op.register('wasm', { f: () => 'wasm' });
    expect(op.impl('wasm').f()).toBe('wasm');
    expect(op.impl('cpu').f()).toBe('reference');
    expect(op.registered('cpu')).toBeUndefined();
    expect(opTable()).toContainEqual({ name: 'test-op', backends: ['wasm'] });
    op.register('wasm', null);
    expect(op.impl('wasm').f()).toBe('reference');
    expect(() => defineOp('test-op', { f: () => 'again' })).toThrow(/defined twice/);
  });

  it('holds the frozen linear, with the reference where no backend registered one', () => {
    expect(frozenLinearOp.impl('cpu')).toBe(referenceFrozenLinear);
  });
});
