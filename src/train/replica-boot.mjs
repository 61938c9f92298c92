// The entry of a data-parallel replica's worker thread (src/train/replicas.ts): a worker starts
// without the parent's TypeScript loader, so register tsx here, then run the replica.
import { register } from 'tsx/esm/api';

register();
await import('./replica-worker.ts');
