/** A classification task whose test split is a fixed stratified 20% of one pool of examples. */
import type { ClassificationExample } from '../formats.ts';
import { stratifiedSplit } from '../split.ts';
import { TASK_SPLIT_SEED, TEST_FRACTION, type Task } from './types.ts';

export interface StratifiedTaskSpec {
  name: string;
  description: string;
  packages: string[];
  labelWords: Record<string, string>;
  template: string;
  /** Every example of the task; `task` is the name shown if a package is missing. */
  read(task: string): ClassificationExample[];
}

export function stratifiedTask(spec: StratifiedTaskSpec): Task {
  const { read, ...rest } = spec;
  return {
    ...rest,
    format: 'classification',
    metric: 'accuracy',
    load() {
      const { kept, heldOut } = stratifiedSplit(read(spec.name), (x) => x.label, TEST_FRACTION, TASK_SPLIT_SEED);
      return { train: kept, test: heldOut };
    },
  };
}
