/**
 * The W&B HTTP API as the official clients speak it: GraphQL on /graphql (UpsertBucket,
 * Viewer, RunResumeStatus) and the run's file_stream, with Basic auth "api:" + key, over one
 * undici Pool per base URL. Each call is one attempt; callers decide about retries (retry.ts).
 */
import { Pool } from 'undici';
import { isRetryableStatus, serverWaitMs } from './retry.ts';

/** An HTTP answer other than 2xx, or a GraphQL `errors[]` inside a 200 (status 200 then). */
export class WandbHttpError extends Error {
  constructor(
    message: string,
    readonly status: number,
    /** What the server asked us to wait (RateLimit-Reset / Retry-After), if anything. */
    readonly serverWaitMs: number | null = null,
  ) {
    super(message);
    this.name = 'WandbHttpError';
  }
  get retryable(): boolean {
    return isRetryableStatus(this.status);
  }
  get authRefused(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

/** Could not reach the server or it did not answer in time: always worth retrying. */
export class WandbNetworkError extends Error {
  readonly retryable = true;
  constructor(message: string) {
    super(message);
    this.name = 'WandbNetworkError';
  }
}

export interface RunIdentity {
  entity: string | null;
  project: string;
  runId: string;
}

export interface UpsertFields extends RunIdentity {
  displayName: string | null;
  group: string | null;
  tags: string[];
  notes: string | null;
  jobType: string;
  /** Already wrapped {"key": {"value": ...}}, see wrapConfig. */
  config: Record<string, { value: unknown }> | null;
}

const UPSERT_BUCKET = `mutation UpsertBucket($id: String, $name: String, $project: String, $entity: String, $groupName: String, $description: String, $displayName: String, $notes: String, $commit: String, $config: JSONString, $host: String, $debug: Boolean, $program: String, $repo: String, $jobType: String, $state: String, $sweep: String, $tags: [String!], $summaryMetrics: JSONString) {
  upsertBucket(input: {id: $id, name: $name, groupName: $groupName, modelName: $project, entityName: $entity, description: $description, displayName: $displayName, notes: $notes, config: $config, commit: $commit, host: $host, debug: $debug, jobProgram: $program, jobRepo: $repo, jobType: $jobType, state: $state, sweep: $sweep, tags: $tags, summaryMetrics: $summaryMetrics}) {
    bucket { id name displayName project { name entity { name } } }
    inserted
  }
}`;

const VIEWER = `query Viewer { viewer { id entity } }`;

const RUN_RESUME_STATUS = `query RunResumeStatus($project: String, $entity: String, $name: String!) {
  model(name: $project, entityName: $entity) {
    id name entity { id name }
    bucket(name: $name, missingOk: true) { id name displayName historyLineCount eventsLineCount logLineCount summaryMetrics config }
  }
}`;

export interface ResumeStatus {
  historyLineCount: number;
  /** The server's summary as a JSON string (null when none). */
  summaryMetrics: string | null;
}

export class WandbApi {
  private readonly pool: Pool;
  private readonly pathPrefix: string;
  private readonly auth: string;

  constructor(baseUrl: string, apiKey: string, private readonly timeoutMs = 180_000) {
    const url = new URL(baseUrl);
    this.pool = new Pool(url.origin, { connections: 4, connect: { timeout: Math.min(timeoutMs, 30_000) } });
    this.pathPrefix = url.pathname.replace(/\/+$/, '');
    this.auth = `Basic ${Buffer.from(`api:${apiKey}`).toString('base64')}`;
  }

  /** POST JSON, parse the JSON answer; throws WandbHttpError or WandbNetworkError. */
  async post(path: string, body: unknown, signal?: AbortSignal): Promise<unknown> {
    let res;
    try {
      res = await this.pool.request({
        method: 'POST',
        path: this.pathPrefix + path,
        headers: { authorization: this.auth, 'content-type': 'application/json', 'user-agent': 'hilo-wandb/0.1' },
        body: JSON.stringify(body),
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        signal,
      });
    } catch (e) {
      if (signal?.aborted) throw e;
      throw new WandbNetworkError(`${path}: ${(e as Error).message}`);
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (e) {
      if (signal?.aborted) throw e;
      throw new WandbNetworkError(`${path}: ${(e as Error).message}`);
    }
    if (res.statusCode < 200 || res.statusCode >= 300) {
      const h = (n: string) => {
        const v = res.headers[n];
        return Array.isArray(v) ? v[0] : v;
      };
      throw new WandbHttpError(`${path}: HTTP ${res.statusCode} ${text.slice(0, 200)}`, res.statusCode, serverWaitMs(h));
    }
    try {
      return text === '' ? {} : JSON.parse(text);
    } catch {
      throw new WandbHttpError(`${path}: answer is not JSON: ${text.slice(0, 200)}`, 502);
    }
  }

  /** GraphQL: an `errors[]` in a 200 answer is an error too (not retried: the query is at fault). */
  async graphql<T>(query: string, variables: Record<string, unknown>, signal?: AbortSignal): Promise<T> {
    const out = (await this.post('/graphql', { query, variables }, signal)) as { data?: T; errors?: Array<{ message?: string }> };
    if (out.errors?.length) {
      const msg = out.errors.map((e) => e.message ?? JSON.stringify(e)).join('; ');
      throw new WandbHttpError(`graphql: ${msg}`, 200);
    }
    if (!out.data) throw new WandbHttpError('graphql: answer has no data', 502);
    return out.data;
  }

  /** The key's default entity (user or team). */
  async viewerEntity(signal?: AbortSignal): Promise<string> {
    const d = await this.graphql<{ viewer: { entity?: string } | null }>(VIEWER, {}, signal);
    if (!d.viewer?.entity) throw new WandbHttpError('graphql: the server knows no default entity for this key', 401);
    return d.viewer.entity;
  }

  /** Create or update the run; returns the entity/project the server filed it under. */
  async upsertRun(f: UpsertFields, signal?: AbortSignal): Promise<{ entity: string; project: string; displayName: string | null }> {
    const vars: Record<string, unknown> = { name: f.runId, project: f.project, jobType: f.jobType, tags: f.tags };
    if (f.entity) vars.entity = f.entity;
    if (f.displayName) vars.displayName = f.displayName;
    if (f.group) vars.groupName = f.group;
    if (f.notes) vars.notes = f.notes;
    if (f.config) vars.config = JSON.stringify(f.config);
    type Answer = { upsertBucket: { bucket: { displayName?: string | null; project?: { name: string; entity?: { name: string } } } } };
    const d = await this.graphql<Answer>(UPSERT_BUCKET, vars, signal);
    const b = d.upsertBucket?.bucket;
    return {
      entity: b?.project?.entity?.name ?? f.entity ?? '',
      project: b?.project?.name ?? f.project,
      displayName: b?.displayName ?? f.displayName,
    };
  }

  /** What the server already has of a run; null when the run does not exist yet. */
  async resumeStatus(id: RunIdentity, signal?: AbortSignal): Promise<ResumeStatus | null> {
    type Answer = { model: { bucket: { historyLineCount?: number | null; summaryMetrics?: string | null } | null } | null };
    const d = await this.graphql<Answer>(RUN_RESUME_STATUS, { project: id.project, entity: id.entity, name: id.runId }, signal);
    const b = d.model?.bucket;
    if (!b) return null;
    return { historyLineCount: b.historyLineCount ?? 0, summaryMetrics: b.summaryMetrics ?? null };
  }

  fileStream(id: RunIdentity, body: FileStreamRequest, signal?: AbortSignal): Promise<unknown> {
    const p = [id.entity ?? '', id.project, id.runId].map(encodeURIComponent).join('/');
    return this.post(`/files/${p}/file_stream`, body, signal);
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

/** One file_stream request; an empty object is the heartbeat. */
export interface FileStreamRequest {
  files?: Record<string, { offset: number; content: string[] }>;
  complete?: boolean;
  exitcode?: number;
}
