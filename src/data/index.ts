/**
 * hilo's data stage: recipe `data:` -> checked examples -> token ids with exact loss masks ->
 * seeded, resumable, padded batches; plus the built-in benchmark tasks. Plain arrays in, typed
 * arrays out; no tfjs.
 */
export {
  loadDataset, encodeDataset, encodeOptions, summarizeDataset, type DataRecipe, type Dataset, type DatasetSummary, type EncodedDataset,
} from './dataset.ts';
export { FORMATS, type Format, type Example } from './formats.ts';
export { parseJsonl, readJsonl, throwIfProblems, MAX_SHOWN } from './jsonl.ts';
export {
  encodeForTraining, encodeCandidates, encodeContinuation, promptText, tokenizerTraits, IGNORE_INDEX,
  type EncodedExample, type ScoringItem, type EncodeOptions,
} from './encode.ts';
export {
  makeBatches, makeChoiceBatches, batchIndices, evalBatches, padBatch, nextTokenTargets, padIdOf, batchesPerEpoch, epochOrder, dataFingerprint, type Batch, type BatchPosition, type BatchOptions,
} from './batch.ts';
export { flattenCandidates, pickAnswers, type CandidateRows, type ScoredItems } from './score.ts';
export { TASKS, TASK_NAMES, getTask, type Task, type TaskSplits, type Metric } from './tasks/index.ts';
export { renderTemplate, templateSlots, DEFAULT_TEMPLATES } from './template.ts';
