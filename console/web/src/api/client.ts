// The masters' HTTP API, typed from its OpenAPI document (schema.d.ts is generated from
// console/openapi.json by `npm run gen`). Every console action is one of these calls.
import type { components } from "./schema";

type Schemas = components["schemas"];
export type ClusterView = Schemas["ClusterView"];
export type WorkerView = Schemas["WorkerView"];
export type MasterView = Schemas["MasterView"];
export type JobView = Schemas["JobView"];
export type JobList = Schemas["JobList"];
export type SubmitJob = Schemas["SubmitJob"];
export type Submitted = Schemas["Submitted"];
export type SavepointAsk = Schemas["SavepointAsk"];
export type SavepointView = Schemas["SavepointView"];
export type RescaleAsk = Schemas["RescaleAsk"];
export type Snapshot = Schemas["Snapshot"];
export type ErrorBody = Schemas["ErrorBody"];
export type Login = Schemas["Login"];
export type JobLiveView = Schemas["JobLiveView"];
export type TaskView = Schemas["TaskView"];
export type EdgeView = Schemas["EdgeView"];
export type SubtaskView = Schemas["SubtaskView"];
export type LogsView = Schemas["LogsView"];
export type CheckpointDetails = Schemas["CheckpointDetails"];
export type SqlScript = Schemas["SqlScript"];
export type SqlCheckView = Schemas["SqlCheckView"];
export type SqlTableView = Schemas["SqlTableView"];
export type SqlCompleteAsk = Schemas["SqlCompleteAsk"];
export type SqlCompletions = Schemas["SqlCompletions"];
export type SqlExplainView = Schemas["SqlExplainView"];
export type SqlFunctions = Schemas["SqlFunctions"];
export type SqlFunctionView = Schemas["SqlFunctionView"];
export type TestRunAsk = Schemas["TestRunAsk"];
export type TestInputAsk = Schemas["TestInputAsk"];
export type TestRunView = Schemas["TestRunView"];
export type DraftListView = Schemas["DraftListView"];
export type DraftView = Schemas["DraftView"];
export type DraftVersionView = Schemas["DraftVersionView"];
export type DraftDiffView = Schemas["DraftDiffView"];
export type SaveDraftAsk = Schemas["SaveDraftAsk"];
export type CanvasSpec = Schemas["CanvasSpec"];
export type CanvasNode = Schemas["CanvasNode"];
export type CanvasOp = Schemas["CanvasOp"];
export type CanvasCompileView = Schemas["CanvasCompileView"];
export type CanvasPreviewAsk = Schemas["CanvasPreviewAsk"];
export type CanvasPreviewView = Schemas["CanvasPreviewView"];
export type SubtaskCheckpointView = Schemas["SubtaskCheckpointView"];
export type LogLineView = Schemas["LogLineView"];
export type JobOutputView = Schemas["JobOutputView"];
export type SinkOutputView = Schemas["SinkOutputView"];
export type OutputRow = Schemas["OutputRow"];
export type ProgramView = Schemas["ProgramView"];
export type ProgramListView = Schemas["ProgramListView"];
export type JobPreview = Schemas["JobPreview"];

/** A search of a worker's log (`GET /api/workers/{id}/logs`). */
export interface LogsQuery {
  q?: string;
  level?: string;
  after?: number;
  limit?: number;
}

/** A refusal of the API: its HTTP status, gRPC code name and message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Called when the API answers 401: the session is gone. */
let onUnauthorized: () => void = () => {};
export function whenUnauthorized(handler: () => void) {
  onUnauthorized = handler;
}

async function call<T>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<T> {
  const request: RequestInit = {
    method,
    credentials: "same-origin",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  };
  return answer<T>(path, await fetch(path, request));
}

/** The body of an answer, or the refusal it is. */
async function answer<T>(path: string, response: Response): Promise<T> {
  if (!response.ok) {
    const error: ErrorBody = await response.json().catch(() => ({ error: response.statusText, code: "UNKNOWN" }));
    if (response.status === 401 && path !== "/api/login") onUnauthorized();
    throw new ApiError(response.status, error.code, error.error);
  }
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

export const api = {
  login: (login: Login) => call<void>("POST", "/api/login", login),
  logout: () => call<void>("POST", "/api/logout"),
  cluster: () => call<ClusterView>("GET", "/api/cluster"),
  jobs: () => call<JobList>("GET", "/api/jobs"),
  job: (id: number) => call<JobView>("GET", `/api/jobs/${id}`),
  submit: (job: SubmitJob) => call<Submitted>("POST", "/api/jobs", job),
  previewJob: (job: SubmitJob) => call<JobPreview>("POST", "/api/jobs/preview", job),
  cancel: (id: number) => call<JobView>("POST", `/api/jobs/${id}/cancel`),
  savepoint: (id: number, ask: SavepointAsk) => call<SavepointView>("POST", `/api/jobs/${id}/savepoint`, ask),
  rescale: (id: number, ask: RescaleAsk) => call<JobView>("POST", `/api/jobs/${id}/rescale`, ask),
  live: (id: number) => call<JobLiveView>("GET", `/api/jobs/${id}/live`),
  output: (id: number, after = 0) => call<JobOutputView>("GET", `/api/jobs/${id}/output?after=${after}`),
  sqlCheck: (script: SqlScript) => call<SqlCheckView>("POST", "/api/sql/check", script),
  sqlComplete: (ask: SqlCompleteAsk) => call<SqlCompletions>("POST", "/api/sql/complete", ask),
  sqlFormat: (script: SqlScript) => call<SqlScript>("POST", "/api/sql/format", script),
  sqlExplain: (script: SqlScript) => call<SqlExplainView>("POST", "/api/sql/explain", script),
  sqlFunctions: () => call<SqlFunctions>("GET", "/api/sql/functions"),
  testRun: (ask: TestRunAsk) => call<TestRunView>("POST", "/api/test-runs", ask),
  canvasCompile: (spec: CanvasSpec) => call<CanvasCompileView>("POST", "/api/canvas/compile", spec),
  canvasPreview: (ask: CanvasPreviewAsk) => call<CanvasPreviewView>("POST", "/api/canvas/preview", ask),
  canvasFromSql: (script: SqlScript) => call<CanvasSpec>("POST", "/api/canvas/from-sql", script),
  drafts: () => call<DraftListView>("GET", "/api/drafts"),
  saveDraft: (name: string, ask: SaveDraftAsk) => call<DraftVersionView>("POST", `/api/drafts/${encodeURIComponent(name)}`, ask),
  draft: (name: string, version?: number) =>
    call<DraftVersionView>("GET", `/api/drafts/${encodeURIComponent(name)}${version === undefined ? "" : `?version=${version}`}`),
  draftDiff: (name: string, from: number, to?: number) =>
    call<DraftDiffView>("GET", `/api/drafts/${encodeURIComponent(name)}/diff?from=${from}${to === undefined ? "" : `&to=${to}`}`),
  deleteDraft: (name: string) => call<void>("DELETE", `/api/drafts/${encodeURIComponent(name)}`),
  programs: () => call<ProgramListView>("GET", "/api/programs"),
  /** Uploads a program's executable as it is (the masters ask it what it is). */
  uploadProgram: async (file: Blob) =>
    answer<ProgramView>(
      "/api/programs",
      await fetch("/api/programs", { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/octet-stream" }, body: file }),
    ),
  deleteProgram: (id: string) => call<void>("DELETE", `/api/programs/${encodeURIComponent(id)}`),
  checkpoint: (id: number, checkpoint: number) => call<CheckpointDetails>("GET", `/api/jobs/${id}/checkpoints/${checkpoint}`),
  logs: (worker: number, query: LogsQuery) => {
    const params = new URLSearchParams();
    if (query.q) params.set("q", query.q);
    if (query.level) params.set("level", query.level);
    if (query.after !== undefined) params.set("after", String(query.after));
    if (query.limit !== undefined) params.set("limit", String(query.limit));
    const search = params.toString();
    return call<LogsView>("GET", `/api/workers/${worker}/logs${search ? `?${search}` : ""}`);
  },
};

/** Whether a job's status is final. */
export function hasEnded(job: JobView): boolean {
  return job.status === "finished" || job.status === "failed" || job.status === "cancelled";
}
