/** What a built-in benchmark task provides; user JSONL data is turned into the same shape. */
import type { Example, Format } from '../formats.ts';

export type Metric = 'accuracy' | 'perplexity';

export interface TaskSplits {
  train: Example[];
  /** Absent: the loader carves eval from train by recipe.data.eval_fraction. */
  eval?: Example[];
  test: Example[];
}

export interface Task {
  name: string;
  format: Format;
  /** One line for listings: what is predicted from what. */
  description: string;
  /** The npm packages the data is read from (named in the error when one is missing). */
  packages: string[];
  /** classification: label -> label word, in label order. */
  labelWords?: Record<string, string>;
  template?: string;
  metric: Metric;
  /** Reads the data (lazily: nothing is touched until a run asks for the task). */
  load(): TaskSplits;
}

/** The seed of every built-in task's fixed splits; independent of the recipe's seed on purpose. */
export const TASK_SPLIT_SEED = 20261128;

/** The fraction of each label a stratified task holds out as its test split. */
export const TEST_FRACTION = 0.2;
