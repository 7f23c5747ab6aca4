/** A scripted `fetch` for unit tests: each call takes the next planned answer. */

export interface Stream {
  response: Response;
  /** Sends text on the stream. */
  push(text: string): void;
  /** Ends the stream normally. */
  end(): void;
  /** Breaks the stream (like a dropped connection). */
  fail(error?: unknown): void;
  /** True once the client cancelled or aborted it. */
  readonly cancelled: boolean;
}

export function sseStream(status = 200): Stream {
  const encoder = new TextEncoder();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let cancelled = false;
  let failed = false;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    cancel() {
      cancelled = true;
    },
  });
  const response = new Response(body, {
    status,
    headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
  });
  return {
    response,
    push: (text) => controller.enqueue(encoder.encode(text)),
    end: () => controller.close(),
    fail: (error = new TypeError("network error")) => {
      try {
        failed = true;
        controller.error(error);
      } catch {
        // already closed
      }
    },
    get cancelled() {
      return cancelled || failed;
    },
  };
}

export function jsonResponse(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

export interface Call {
  url: string;
  headers: Record<string, string>;
  method: string;
  body: string | undefined;
  at: number;
  signal: AbortSignal | undefined;
}

type Answer = Stream | Response | Error | (() => Response | Promise<Response>);

/** `fetch` that answers from `plan` in order (then fails with a network error). */
export function scriptedFetch(plan: Answer[] = []) {
  const calls: Call[] = [];
  const queue = [...plan];
  const fetch = async (input: string, init: RequestInit = {}): Promise<Response> => {
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((value, key) => {
      headers[key] = value;
    });
    calls.push({
      url: input,
      headers,
      method: init.method ?? "GET",
      body: typeof init.body === "string" ? init.body : undefined,
      at: Date.now(),
      signal: init.signal ?? undefined,
    });
    const next = queue.shift();
    if (next === undefined) throw new TypeError("fetch failed: connection refused");
    if (next instanceof Error) throw next;
    if (next instanceof Response) return next;
    if (typeof next === "function") return next();
    // Like a real fetch: aborting the request breaks the body.
    init.signal?.addEventListener("abort", () => {
      next.fail(new DOMException("The operation was aborted.", "AbortError"));
    });
    return next.response;
  };
  return {
    fetch,
    calls,
    /** Adds answers for later calls. */
    then: (...answers: Answer[]) => queue.push(...answers),
  };
}

/** Lets pending promise callbacks run. */
export async function flush(times = 10): Promise<void> {
  for (let i = 0; i < times; i++) await Promise.resolve();
}
