import { describe, expect, it } from 'vitest';
import { recipeJsonSchema } from '../../src/recipe/json-schema.ts';

describe('recipeJsonSchema', () => {
  const schema = recipeJsonSchema() as Record<string, any>;
  it('carries fields, defaults, docs and strictness from the zod schema', () => {
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(['model']);
    expect(schema.properties.train.properties.learning_rate).toEqual({
      default: 0.0003, description: 'Peak learning rate of AdamW.', type: 'number', exclusiveMinimum: 0,
    });
    expect(schema.properties.adapter.properties.strategy.enum).toEqual(['topk', 'topp', 'dense']);
  });
  it('accepts the aliases, each pointing at its canonical key', () => {
    expect(schema.properties.lr).toEqual({ description: 'Alias of train.learning_rate.', type: 'number', exclusiveMinimum: 0 });
    expect(schema.properties.adapter.properties.lora_rank.description).toBe('Alias of adapter.rank.r.');
    expect(schema.properties.train.properties.micro_batch_size.type).toBe('integer');
  });
  it('leaves out hilo\'s own metadata', () => {
    expect(JSON.stringify(schema)).not.toMatch(/"isPath"|"allowed"/);
  });
});
