/**
 * The recipe as JSON Schema (draft 2020-12), generated from the zod schema, so editors that
 * read YAML with a schema (e.g. `# yaml-language-server: $schema=recipe.schema.json`) complete
 * keys, show each field's doc and flag unknown keys. Aliases are listed as accepted keys.
 */
import { z } from 'zod';
import { ALIASES, recipeSchema } from './schema.ts';

type Node = { [key: string]: unknown; properties?: Record<string, Node> };

/** Keys of our own `.meta()` that mean nothing to a JSON Schema reader. */
const OWN_META = new Set(['allowed', 'isPath']);

function stripOwnMeta(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripOwnMeta);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).filter(([k]) => !OWN_META.has(k)).map(([k, v]) => [k, stripOwnMeta(v)]));
}

const child = (node: Node | undefined, key: string): Node | undefined => node?.properties?.[key];

export function recipeJsonSchema(): Node {
  const schema = stripOwnMeta(z.toJSONSchema(recipeSchema, { io: 'input', unrepresentable: 'any' })) as Node;
  for (const [alias, canonical] of Object.entries(ALIASES)) {
    const keys = alias.split('.');
    const parent = keys.slice(0, -1).reduce<Node | undefined>(child, schema);
    const target = canonical.split('.').reduce<Node | undefined>(child, schema);
    if (!parent?.properties || !target) throw new Error(`alias ${alias} -> ${canonical} does not fit the schema`);
    const { default: _ignored, ...rest } = target;
    parent.properties[keys.at(-1)!] = { ...rest, description: `Alias of ${canonical}.` };
  }
  return schema;
}
