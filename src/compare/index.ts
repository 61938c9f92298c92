/**
 * The compare stage: grids of training runs (methods x budgets x tasks x seeds), their results
 * files, tables and plots. Loading a grid never imports tfjs; running one does.
 */
export { budgetLabel, expandCells, loadGrid, overrideArg, type Cell, type Grid, type LoadGridOptions } from './grid.ts';
export { GRID_METHODS, GridError, gridSchema, METRICS, type GridBudget, type GridMethod, type MetricName, type ParsedGrid, type UserTask } from './schema.ts';
export {
  budgetText, durationText, failureLines, groupRows, intervalText, markdownTable, mean, metricText, runRow, sampleStd, tableCells,
  TABLE_HEADER, type GroupRow, type RunResultsLike, type RunRow,
} from './summary.ts';
export { LEVEL, meanInterval, pairedDifference, tCritical, tTwoSidedP, wilcoxonSignedRankP, type MeanInterval, type PairedDifference } from './stats.ts';
export { pairedComparisons, pairedMarkdown, type PairRow } from './paired.ts';
export { etaSeconds, progressText, type GridProgress } from './progress.ts';
export { comparePlotSpec, INTERVAL_LAYER, plotData, POINT_LAYER, type ParamAxis } from './plot.ts';
export { escapeHtml, htmlReport, type ReportInput } from './report.ts';
export { isFinished, readCellResults, recipeChanges } from './results.ts';
