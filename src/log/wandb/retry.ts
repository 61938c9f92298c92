/**
 * When to re-send a failed W&B request and how long to wait first. Mirrors the Go client's
 * file_stream policy (core/internal/filestream/retry_policy.go): 429, 5xx and network errors
 * are retried with jittered exponential backoff; other 4xx mean the request itself is wrong
 * (bad key, deleted run) and re-sending cannot help. Pure functions, tested by tables.
 */

export interface BackoffPolicy {
  /** First wait; each retry doubles it up to maxMs. The official client uses 2 s .. 60 s. */
  minMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { minMs: 2_000, maxMs: 60_000 };

/** A server's "come back in N s" beyond this is treated as a broken header, not a plan. */
const MAX_SERVER_WAIT_MS = 5 * 60_000;

/** 408 request timeout, 429 rate limited, 5xx server trouble; 400/401/403/404/409/410 are final. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * Wait before retry number `attempt` (0 = first retry): the exponential cap, of which the upper
 * half is random ("equal jitter"), so clients that failed together do not return together.
 */
export function backoffMs(attempt: number, policy: BackoffPolicy, rand: () => number = Math.random): number {
  const cap = Math.min(policy.maxMs, policy.minMs * 2 ** Math.min(attempt, 30));
  return cap / 2 + (rand() * cap) / 2;
}

/**
 * The wait a server asked for: `RateLimit-Reset` (seconds until the window resets, IETF
 * draft used by W&B) or `Retry-After` (seconds or an HTTP date). null when neither is usable.
 */
export function serverWaitMs(header: (name: string) => string | undefined, now: number = Date.now()): number | null {
  const reset = header('ratelimit-reset');
  if (reset !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(reset)) return Math.min(Number(reset) * 1000, MAX_SERVER_WAIT_MS);
  const after = header('retry-after');
  if (after === undefined) return null;
  if (/^\s*\d+(\.\d+)?\s*$/.test(after)) return Math.min(Number(after) * 1000, MAX_SERVER_WAIT_MS);
  const date = Date.parse(after);
  return Number.isNaN(date) ? null : Math.min(Math.max(0, date - now), MAX_SERVER_WAIT_MS);
}

/** The wait before the next try: our backoff, but never shorter than what the server asked. */
export function retryDelayMs(attempt: number, policy: BackoffPolicy, serverWait: number | null, rand?: () => number): number {
  return Math.max(backoffMs(attempt, policy, rand), serverWait ?? 0);
}

/** An error that says whether trying again can help (WandbHttpError, WandbNetworkError). */
interface MaybeRetryable {
  retryable?: boolean;
  serverWaitMs?: number | null;
}

/** Sleep that an AbortSignal cuts short (rejecting with the signal's reason). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Run `fn` until it succeeds, retrying retryable failures with backoff; others are thrown at once. */
export async function callWithRetries<T>(fn: () => Promise<T>, policy: BackoffPolicy, signal?: AbortSignal): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      const err = e as MaybeRetryable;
      if (signal?.aborted || !err.retryable) throw e;
      await sleep(retryDelayMs(attempt, policy, err.serverWaitMs ?? null), signal);
    }
  }
}
