// ---- The client's runtime: the same in every client `berth client --lang ts` writes. ----

/** One field that failed validation: its path in the request (`title`, `items[2].qty`) and why. */
export interface FieldError {
  path: string;
  message: string;
}

/**
 * A call that did not succeed: an answer outside 2xx (with Berth's error body when the host or
 * the function gave one), or a request that got no answer at all (`status` 0).
 */
export class BerthError extends Error {
  /** The HTTP status; 0 when no answer came (the network failed or the call was aborted). */
  readonly status: number;
  /**
   * Berth's machine-readable code (`validation`, `not_found`, `unauthorized`, `timeout`, ...);
   * `http_<status>` when the body is not Berth's error body; `network` or `aborted` when no answer
   * came.
   */
  readonly code: string;
  /** The id the host gave the request: quote it when reporting a problem (it is in the host's logs). */
  readonly requestId: string | undefined;
  /** For `validation`: every field that failed, with its message. */
  readonly fields: FieldError[];
  /** The operation called: `<group>.<function>`. */
  readonly operation: string;
  /** The answer's body: parsed JSON, text, or undefined. */
  readonly body: unknown;

  constructor(init: {
    status: number;
    code: string;
    message: string;
    requestId: string | undefined;
    fields: FieldError[];
    operation: string;
    body: unknown;
    cause?: unknown;
  }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "BerthError";
    this.status = init.status;
    this.code = init.code;
    this.requestId = init.requestId;
    this.fields = init.fields;
    this.operation = init.operation;
    this.body = init.body;
  }
}

/** How a client reaches the host. */
export interface ClientOptions {
  /** Where the host serves, e.g. `https://api.example.com`; empty (the default) for the page's own origin. */
  baseUrl?: string;
  /** Headers for every call (an `authorization` bearer token, say), or a function giving them. */
  headers?: Record<string, string> | (() => Record<string, string>);
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

/** Per-call options. */
export interface CallOptions {
  signal?: AbortSignal;
  headers?: Record<string, string>;
}

type BodyKind = "json" | "text" | "bytes";
type AnswerKind = "json" | "text" | "bytes" | "none" | "auto";

interface Operation {
  id: string;
  method: string;
  body?: BodyKind;
  answer: AnswerKind;
}

function queryString(query: object | undefined): string {
  if (query === undefined) return "";
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null) continue;
    for (const item of Array.isArray(value) ? value : [value]) params.append(key, String(item));
  }
  const text = params.toString();
  return text === "" ? "" : `?${text}`;
}

async function readAnswer(res: Response): Promise<unknown> {
  if (res.status === 204 || res.status === 205 || res.status === 304) return undefined;
  const type = res.headers.get("content-type") ?? "";
  const text = await res.text();
  if (/^application\/([\w.+-]+\+)?json/i.test(type)) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }
  return text === "" ? undefined : text;
}

function failure(op: Operation, res: Response, body: unknown): BerthError {
  const headerId = res.headers.get("x-request-id") ?? undefined;
  if (typeof body === "object" && body !== null && "error" in body && "message" in body) {
    const b = body as { error: unknown; message: unknown; request_id?: unknown; fields?: unknown };
    const fields = Array.isArray(b.fields)
      ? b.fields.filter(
          (f): f is FieldError =>
            typeof f === "object" && f !== null && typeof f.path === "string" && typeof f.message === "string",
        )
      : [];
    return new BerthError({
      status: res.status,
      code: String(b.error),
      message: String(b.message),
      requestId: typeof b.request_id === "string" ? b.request_id : headerId,
      fields,
      operation: op.id,
      body,
    });
  }
  const detail = typeof body === "string" && body !== "" ? `: ${body.slice(0, 200)}` : "";
  return new BerthError({
    status: res.status,
    code: `http_${res.status}`,
    message: `${op.id} answered ${res.status} ${res.statusText}${detail}`,
    requestId: headerId,
    fields: [],
    operation: op.id,
    body,
  });
}

async function send(
  client: ClientOptions,
  op: Operation,
  path: string,
  query: object | undefined,
  body: unknown,
  call: CallOptions | undefined,
): Promise<unknown> {
  const url = `${(client.baseUrl ?? "").replace(/\/+$/, "")}${path}${queryString(query)}`;
  const shared = typeof client.headers === "function" ? client.headers() : client.headers;
  const headers = new Headers({ accept: "application/json, text/plain;q=0.9, */*;q=0.1", ...shared, ...call?.headers });
  let payload: BodyInit | undefined;
  if (op.body === "json") {
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
    payload = JSON.stringify(body);
  } else if (op.body === "text") {
    if (!headers.has("content-type")) headers.set("content-type", "text/plain; charset=utf-8");
    payload = String(body);
  } else if (op.body === "bytes") {
    if (!headers.has("content-type")) headers.set("content-type", "application/octet-stream");
    payload = body as BodyInit;
  }
  let res: Response;
  try {
    res = await (client.fetch ?? fetch)(url, { method: op.method, headers, body: payload, signal: call?.signal });
  } catch (cause) {
    const aborted = cause instanceof Error && cause.name === "AbortError";
    return Promise.reject(
      new BerthError({
        status: 0,
        code: aborted ? "aborted" : "network",
        message: `${op.id}: ${op.method} ${url} got no answer: ${cause instanceof Error ? cause.message : String(cause)}`,
        requestId: undefined,
        fields: [],
        operation: op.id,
        body: undefined,
        cause,
      }),
    );
  }
  if (!res.ok) throw failure(op, res, await readAnswer(res));
  switch (op.answer) {
    case "none":
      await res.body?.cancel();
      return undefined;
    case "json":
      return res.status === 204 ? undefined : ((await res.json()) as unknown);
    case "text":
      return res.text();
    case "bytes":
      return res.blob();
    case "auto":
      return readAnswer(res);
  }
}
