/**
 * A local stand-in for the W&B API (node:http on 127.0.0.1, ephemeral port): the GraphQL
 * queries hilo uses (UpsertBucket, Viewer, RunResumeStatus) and file_stream, with the server's
 * offset semantics (line i of a request lands at offset + i, overwriting what was there). It
 * records every request, and can be told to fail (status codes, hangs) or go away and come
 * back on the same port. It closes itself after `lifetimeMs` in case a test forgets.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const GOOD_KEY = '0123456789abcdef0123456789abcdef01234567';

export interface FakeRun {
  entity: string;
  project: string;
  name: string;
  displayName: string | null;
  group: string | null;
  tags: string[];
  notes: string | null;
  jobType: string | null;
  /** The config variable exactly as received (a JSON string). */
  config: string | null;
  history: string[];
  summary: string | null;
  complete: boolean;
  exitcode: number | null;
  /** Lines written again at an offset that already held one, and how many of those differed. */
  rewrites: number;
  rewritesDiffering: number;
}

export interface Received {
  path: string;
  body: any;
  at: number;
  authorized: boolean;
}

/** What to do with a request instead of answering it normally. */
export type Fault =
  | { status: number; headers?: Record<string, string> }
  | 'hang' // never answer, change nothing
  | 'apply-then-hang'; // do the work, never answer (the answer is "lost")

export class FakeWandb {
  readonly runs = new Map<string, FakeRun>();
  readonly requests: Received[] = [];
  /** Decides per request; return null to answer normally. */
  fault: ((r: Received) => Fault | null) | null = null;
  gaps = 0;
  port = 0;
  private server: Server | null = null;
  private killTimer: NodeJS.Timeout | null = null;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  fileStreams(): Received[] {
    return this.requests.filter((r) => r.path.endsWith('/file_stream'));
  }

  run(entity: string, project: string, name: string): FakeRun | undefined {
    return this.runs.get(`${entity}/${project}/${name}`);
  }

  async start(lifetimeMs = 60_000): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
    this.killTimer = setTimeout(() => void this.stop(), lifetimeMs);
    this.killTimer.unref();
  }

  /** Close the port and drop every connection (hung ones too); start() again reuses the port. */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (this.killTimer) clearTimeout(this.killTimer);
    if (!s) return;
    const closed = new Promise<void>((r) => s.close(() => r()));
    s.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const expected = `Basic ${Buffer.from(`api:${GOOD_KEY}`).toString('base64')}`;
    const r: Received = { path: req.url ?? '', body: raw ? JSON.parse(raw) : null, at: Date.now(), authorized: req.headers.authorization === expected };
    this.requests.push(r);
    const fault = this.fault?.(r) ?? null;
    if (fault === 'hang') return;
    if (fault && typeof fault === 'object') {
      res.writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers }).end('{"error":"injected"}');
      return;
    }
    if (!r.authorized) return void res.writeHead(401, { 'content-type': 'application/json' }).end('{"errors":[{"message":"invalid api key"}]}');
    const [status, answer] = r.path === '/graphql' ? this.graphql(r.body) : this.fileStream(r.path, r.body);
    if (fault === 'apply-then-hang') return;
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  }

  private graphql(body: { query: string; variables: Record<string, any> }): [number, unknown] {
    const q = body.query;
    const v = body.variables ?? {};
    if (/^\s*query Viewer\b/.test(q)) return [200, { data: { viewer: { id: 'u1', entity: 'tester' } } }];
    if (/^\s*query RunResumeStatus\b/.test(q)) {
      const run = this.run(v.entity ?? 'tester', v.project, v.name);
      const bucket = run ? { id: 'b1', name: run.name, historyLineCount: run.history.length, summaryMetrics: run.summary, config: run.config } : null;
      return [200, { data: { model: { id: 'm1', name: v.project, entity: { id: 'e1', name: v.entity }, bucket } } }];
    }
    if (/^\s*mutation UpsertBucket\b/.test(q)) {
      const entity = v.entity ?? 'tester';
      const key = `${entity}/${v.project}/${v.name}`;
      const old = this.runs.get(key);
      const run: FakeRun = old ?? {
        entity, project: v.project, name: v.name, displayName: null, group: null, tags: [], notes: null, jobType: null,
        config: null, history: [], summary: null, complete: false, exitcode: null, rewrites: 0, rewritesDiffering: 0,
      };
      run.displayName = v.displayName ?? run.displayName ?? 'dandy-sun-3';
      run.group = v.groupName ?? run.group;
      run.tags = v.tags ?? run.tags;
      run.notes = v.notes ?? run.notes;
      run.jobType = v.jobType ?? run.jobType;
      run.config = v.config ?? run.config;
      this.runs.set(key, run);
      const bucket = { id: 'b1', name: run.name, displayName: run.displayName, project: { name: run.project, entity: { name: entity } } };
      return [200, { data: { upsertBucket: { bucket, inserted: !old } } }];
    }
    return [200, { errors: [{ message: `unknown query: ${q.slice(0, 40)}` }] }];
  }

  private fileStream(path: string, body: any): [number, unknown] {
    const m = /^\/files\/([^/]+)\/([^/]+)\/([^/]+)\/file_stream$/.exec(path);
    const run = m && this.run(decodeURIComponent(m[1]), decodeURIComponent(m[2]), decodeURIComponent(m[3]));
    if (!run) return [404, { error: 'run not found' }];
    const h = body?.files?.['wandb-history.jsonl'];
    if (h) {
      if (h.offset > run.history.length) {
        this.gaps++;
        return [400, { error: `offset ${h.offset} leaves a gap after line ${run.history.length}` }];
      }
      h.content.forEach((line: string, i: number) => {
        const at = h.offset + i;
        if (at < run.history.length) {
          run.rewrites++;
          if (run.history[at] !== line) run.rewritesDiffering++;
        }
        run.history[at] = line;
      });
    }
    const s = body?.files?.['wandb-summary.json'];
    if (s) run.summary = s.content[0];
    if (body?.complete) {
      run.complete = true;
      run.exitcode = body.exitcode;
    }
    return [200, { exitcode: null, limits: {} }];
  }
}
