/**
 * The built-in benchmark tasks by name (recipe `data.task`). Each module only reads its npm
 * data package when `load()` is called. Sizes, sources and licences: README.md beside this file.
 */
import { fieldError } from '../../errors.ts';
import { mobyLm } from './moby.ts';
import { namesGender } from './names.ts';
import { sentiment, sentimentCross } from './sentiment.ts';
import { sotuParty } from './sotu.ts';
import { spam } from './spam.ts';
import type { Task, TaskSplits } from './types.ts';

/** A grid runs many cells (and the probe its calibration) in one process: read each task's data once. */
function loadOnce(task: Task): Task {
  let splits: TaskSplits | undefined;
  return { ...task, load: () => (splits ??= Object.freeze(task.load()) as TaskSplits) };
}

export const TASKS: Readonly<Record<string, Task>> = Object.fromEntries(
  [sentiment, sentimentCross, spam, sotuParty, namesGender, mobyLm].map((t) => [t.name, loadOnce(t)]),
);

export const TASK_NAMES = Object.keys(TASKS);

export function getTask(name: string): Task {
  const task = TASKS[name];
  if (!task) throw fieldError('recipe.data.task', name, TASK_NAMES);
  return task;
}

export type { Metric, Task, TaskSplits } from './types.ts';
