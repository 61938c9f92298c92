// The entry of an alpha-hill worker thread (src/probe/alpha-hill-dir.ts): a worker starts
// without the parent's TypeScript loader, so register tsx here, then run the worker.
import { register } from 'tsx/esm/api';

register();
await import('./spectrum-worker.ts');
