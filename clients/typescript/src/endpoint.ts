/**
 * Typed JSON calls: `client.endpoint("/api/v1/apps").get({ validate })`. A non-2xx answer
 * becomes a `PiCloudError` carrying the server's error envelope.
 */

import type { ErrorEnvelope, FetchLike, Validator } from "./types";
import { bearer } from "./bearer";

/** A failed call: the HTTP status and the server's `{"error": {code, message}}`. */
export class PiCloudError extends Error {
  override readonly name = "PiCloudError";
  /** The HTTP status (0 when no response was involved). */
  readonly status: number;
  /** The server's stable error code (`not_found`, `unauthorized`, …) or `http_<status>`. */
  readonly code: string;
  /** The parsed response body, when there was one. */
  readonly body: unknown;
  /** The response's `Retry-After` in seconds (429 and 503 answers), when it had one. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    status: number,
    code: string,
    message: string,
    body?: unknown,
    retryAfterSeconds?: number,
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** True when `value` is the server's error envelope. */
export function isErrorEnvelope(value: unknown): value is ErrorEnvelope {
  if (typeof value !== "object" || value === null || !("error" in value)) return false;
  const error = (value as { error: unknown }).error;
  return (
    typeof error === "object" &&
    error !== null &&
    typeof (error as { code?: unknown }).code === "string" &&
    typeof (error as { message?: unknown }).message === "string"
  );
}

/** Reads a failed response into a `PiCloudError`. */
export async function errorFromResponse(response: Response): Promise<PiCloudError> {
  const text = await response.text();
  let body: unknown = text;
  try {
    body = text === "" ? undefined : (JSON.parse(text) as unknown);
  } catch {
    // not JSON: keep the text
  }
  const retryHeader = response.headers.get("retry-after");
  const retryAfter =
    retryHeader !== null && /^[0-9]+$/.test(retryHeader.trim())
      ? Number.parseInt(retryHeader, 10)
      : undefined;
  if (isErrorEnvelope(body)) {
    return new PiCloudError(response.status, body.error.code, body.error.message, body, retryAfter);
  }
  const message =
    typeof body === "string" && body.trim() !== ""
      ? body.trim().slice(0, 500)
      : response.statusText || `HTTP ${response.status}`;
  return new PiCloudError(response.status, `http_${response.status}`, message, body, retryAfter);
}

export type QueryValue = string | number | boolean | null | undefined;

export interface RequestOptions<T> {
  /** Checks (and types) the response body. */
  validate?: Validator<T>;
  /** Query parameters; `undefined` and `null` values are left out. */
  query?: Record<string, QueryValue>;
  /** Extra request headers. */
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** A path on the server with one method per HTTP verb. */
export interface Endpoint {
  readonly url: string;
  get<T = unknown>(options?: RequestOptions<T>): Promise<T>;
  delete<T = unknown>(options?: RequestOptions<T>): Promise<T>;
  post<T = unknown>(body?: unknown, options?: RequestOptions<T>): Promise<T>;
  put<T = unknown>(body?: unknown, options?: RequestOptions<T>): Promise<T>;
  patch<T = unknown>(body?: unknown, options?: RequestOptions<T>): Promise<T>;
}

/** What an endpoint needs from its client. */
export interface EndpointContext {
  baseUrl: string;
  fetch: FetchLike;
  apiKey?: string;
  headers?: Record<string, string>;
}

/** `baseUrl` joined with `path` (an absolute URL is taken as is). */
export function joinUrl(baseUrl: string, path: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path)) return path;
  return `${baseUrl.replace(/\/+$/, "")}/${path.replace(/^\/+/, "")}`;
}

function withQuery(url: string, query: Record<string, QueryValue> | undefined): string {
  if (!query) return url;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null) params.append(key, String(value));
  }
  const qs = params.toString();
  if (qs === "") return url;
  return `${url}${url.includes("?") ? "&" : "?"}${qs}`;
}

async function call<T>(
  ctx: EndpointContext,
  method: string,
  url: string,
  body: unknown,
  options: RequestOptions<T> = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json", ...ctx.headers };
  if (ctx.apiKey) headers.Authorization = bearer(ctx.apiKey);
  const init: RequestInit = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  Object.assign(headers, options.headers);
  if (options.signal) init.signal = options.signal;
  const response = await ctx.fetch(withQuery(url, options.query), init);
  if (!response.ok) throw await errorFromResponse(response);
  const text = await response.text();
  let data: unknown = undefined;
  if (text !== "") {
    const type = response.headers.get("content-type") ?? "";
    if (/[/+]json\b/i.test(type)) {
      try {
        data = JSON.parse(text) as unknown;
      } catch (error) {
        throw new PiCloudError(
          response.status,
          "bad_json",
          `invalid JSON in response: ${String(error)}`,
          text,
        );
      }
    } else {
      data = text;
    }
  }
  return options.validate ? options.validate.parse(data) : (data as T);
}

/** An endpoint at `path` under the client's base URL. */
export function endpoint(ctx: EndpointContext, path: string): Endpoint {
  const url = joinUrl(ctx.baseUrl, path);
  return {
    url,
    get: (options) => call(ctx, "GET", url, undefined, options),
    delete: (options) => call(ctx, "DELETE", url, undefined, options),
    post: (body, options) => call(ctx, "POST", url, body, options),
    put: (body, options) => call(ctx, "PUT", url, body, options),
    patch: (body, options) => call(ctx, "PATCH", url, body, options),
  };
}

/** `errorFromResponse`, or the bare status when the body cannot be read. */
export async function errorFromResponseSafe(response: Response): Promise<PiCloudError> {
  try {
    return await errorFromResponse(response);
  } catch {
    return new PiCloudError(response.status, `http_${response.status}`, response.statusText);
  }
}
