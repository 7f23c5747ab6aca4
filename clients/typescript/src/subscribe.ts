/**
 * Realtime subscriptions: Server-Sent Events read from a streaming `fetch` (not
 * EventSource), so that the client can send `Authorization` and `Last-Event-ID`, see a
 * 401 and refresh the token, and choose its own reconnect schedule.
 */

import type {
  BackoffOptions,
  FetchLike,
  HistoryTruncated,
  Published,
  SubscribeOptions,
  Subscription,
  SubscriptionState,
  SubscriptionStatus,
  TokenResult,
  TopicMessage,
  TopicReset,
} from "./types";
import { PiCloudError, errorFromResponse } from "./endpoint";
import { bearer } from "./bearer";

// ---------------------------------------------------------------------------------------
// The event-stream parser (WHATWG HTML, "Server-sent events", parsing an event stream)

/** One dispatched event. */
export interface SseEvent {
  /** The `event:` field, or "message". */
  type: string;
  /** The `data:` lines joined with "\n". */
  data: string;
  /** The last event id seen on the stream so far (it carries over between events). */
  lastEventId: string;
}

export interface SseParserHandlers {
  onEvent: (event: SseEvent) => void;
  /** A valid `retry:` field, in milliseconds. */
  onRetry?: (ms: number) => void;
  /** A comment line (`:heartbeat`), without the colon. */
  onComment?: (text: string) => void;
}

/**
 * An incremental event-stream parser: feed it decoded text in chunks split anywhere
 * (inside a field, between CR and LF); it calls back per complete event. Lines end with
 * CRLF, LF or CR; an event ends with an empty line; an unterminated event at the end of
 * the stream is dropped, as the standard says.
 */
export class SseParser {
  private buffer = "";
  private skipLeadingLf = false;
  private sawFirstChunk = false;
  private data = "";
  private hasData = false;
  private eventType = "";
  /** The id field as last read; committed to `lastEventId` when an event ends. */
  private idBuffer: string;
  private lastEventId: string;

  constructor(
    private readonly handlers: SseParserHandlers,
    initialLastEventId = "",
  ) {
    this.idBuffer = initialLastEventId;
    this.lastEventId = initialLastEventId;
  }

  /** Feed the next piece of the stream. */
  push(chunk: string): void {
    if (chunk.length === 0) return;
    if (!this.sawFirstChunk) {
      this.sawFirstChunk = true;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    if (this.skipLeadingLf) {
      this.skipLeadingLf = false;
      if (chunk.charCodeAt(0) === 0x0a) chunk = chunk.slice(1);
    }
    let text = this.buffer + chunk;
    let start = 0;
    for (;;) {
      let end = -1;
      for (let i = start; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c === 0x0a || c === 0x0d) {
          end = i;
          break;
        }
      }
      if (end < 0) break;
      const line = text.slice(start, end);
      if (text.charCodeAt(end) === 0x0d) {
        if (end + 1 < text.length) {
          start = text.charCodeAt(end + 1) === 0x0a ? end + 2 : end + 1;
        } else {
          // CR at the very end: a following LF (in the next chunk) belongs to it.
          this.skipLeadingLf = true;
          start = end + 1;
        }
      } else {
        start = end + 1;
      }
      this.line(line);
    }
    text = text.slice(start);
    this.buffer = text;
  }

  /**
   * The id that a reconnect should send as `Last-Event-ID`: that of the last event that
   * ended (an id in an unfinished event does not count).
   */
  get lastId(): string {
    return this.lastEventId;
  }

  private line(line: string): void {
    if (line.length === 0) {
      this.dispatch();
      return;
    }
    if (line.charCodeAt(0) === 0x3a /* : */) {
      this.handlers.onComment?.(line.slice(1));
      return;
    }
    const colon = line.indexOf(":");
    let field: string;
    let value: string;
    if (colon < 0) {
      field = line;
      value = "";
    } else {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    }
    switch (field) {
      case "event":
        this.eventType = value;
        break;
      case "data":
        this.data = this.hasData ? `${this.data}\n${value}` : value;
        this.hasData = true;
        break;
      case "id":
        if (!value.includes("\u0000")) this.idBuffer = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.handlers.onRetry?.(Number.parseInt(value, 10));
        break;
      default:
        // Unknown fields are ignored.
        break;
    }
  }

  private dispatch(): void {
    this.lastEventId = this.idBuffer;
    if (!this.hasData) {
      this.eventType = "";
      return;
    }
    const event: SseEvent = {
      type: this.eventType === "" ? "message" : this.eventType,
      data: this.data,
      lastEventId: this.lastEventId,
    };
    this.data = "";
    this.hasData = false;
    this.eventType = "";
    this.handlers.onEvent(event);
  }
}

// ---------------------------------------------------------------------------------------
// Backoff

export const DEFAULT_BACKOFF: Required<BackoffOptions> = {
  initialMs: 1000,
  factor: 2,
  maxMs: 30000,
  jitter: 0.2,
};

/**
 * The delay before reconnect attempt `attempt` (1 for the first retry after a failure):
 * `min(maxMs, initialMs * factor^(attempt-1))`, less up to `jitter` of it at random.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const initialMs = options.initialMs ?? DEFAULT_BACKOFF.initialMs;
  const factor = options.factor ?? DEFAULT_BACKOFF.factor;
  const maxMs = options.maxMs ?? DEFAULT_BACKOFF.maxMs;
  const jitter = Math.min(1, Math.max(0, options.jitter ?? DEFAULT_BACKOFF.jitter));
  const exponent = Math.max(0, attempt - 1);
  const base = Math.min(maxMs, initialMs * Math.pow(factor, exponent));
  return Math.round(base * (1 - jitter * random()));
}

// ---------------------------------------------------------------------------------------
// The subscription loop

/** What a subscription needs from its client. */
export interface SubscribeContext {
  baseUrl: string;
  fetch: FetchLike;
}

class Stop extends Error {}

/** The URL of one stream of several topics on the app's host (`GET /realtime?topic=…`). */
export function streamUrl(baseUrl: string, topics: readonly string[]): string {
  const query = topics.map((t) => `topic=${encodeURIComponent(t)}`).join("&");
  return `${baseUrl.replace(/\/+$/, "")}/realtime?${query}`;
}

/** The realtime URL of a topic on the app's host. */
export function topicUrl(baseUrl: string, topic: string): string {
  return `${baseUrl.replace(/\/+$/, "")}/realtime/topics/${encodeURIComponent(topic)}`;
}

const publishedValidator = {
  parse(input: unknown): Published {
    const reply = input as Partial<Published> | null;
    if (typeof reply?.id !== "number" || typeof reply.published_at !== "string") {
      throw new TypeError("not a publish reply");
    }
    return { id: reply.id, published_at: reply.published_at };
  },
};

/**
 * Publish one message to `topic` on the app at `ctx.baseUrl` with a subscriber token that
 * grants publish (`POST /realtime/topics/{topic}/messages`). No API key is involved, so
 * this is safe in a browser.
 */
export async function publishWithToken(
  ctx: SubscribeContext,
  topic: string,
  message: unknown,
  token: TokenResult,
  signal?: AbortSignal,
): Promise<Published> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (token) headers.Authorization = bearer(token);
  const response = await ctx.fetch(`${topicUrl(ctx.baseUrl, topic)}/messages`, {
    method: "POST",
    headers,
    body: JSON.stringify({ message }),
    ...(signal ? { signal } : {}),
  });
  if (!response.ok) throw await errorFromResponseSafe(response);
  return publishedValidator.parse(await response.json());
}

/**
 * Subscribe to `topic` on the app at `ctx.baseUrl`, or to a list of topics over one
 * connection (each message says its topic; the stream has one cursor for all of them).
 * `onMessage` gets each message once, in order per topic; after a dropped connection the
 * subscription reconnects with backoff and resumes from the last event id it saw (on a
 * stream of several topics, the server sends that cursor before any message too).
 * Returns the function that ends it, which also has `publish(message)` (with the
 * subscription's token; one topic only).
 */
export function subscribe<T = unknown>(
  ctx: SubscribeContext,
  topic: string | readonly string[],
  onMessage: (message: TopicMessage<T>) => void,
  options: SubscribeOptions<T> = {},
): Subscription {
  const url = typeof topic === "string" ? topicUrl(ctx.baseUrl, topic) : streamUrl(ctx.baseUrl, topic);
  const single = typeof topic === "string" ? topic : "";
  let stopped = false;
  let lastEventId = options.lastEventId ?? "";
  let token: TokenResult = options.token;
  let failures = 0; // failed attempts since the last successful open
  let unauthorizedInARow = 0;
  let serverRetryMs: number | undefined;
  let connection: AbortController | undefined;
  let sleepTimer: ReturnType<typeof setTimeout> | undefined;
  let wakeSleep: (() => void) | undefined;

  const status = (s: SubscriptionStatus): void => {
    if (!stopped) safeCall(() => options.onStatus?.(s));
  };
  const reportError = (error: unknown): void => {
    if (!stopped) safeCall(() => options.onError?.(error));
  };

  /** Ends the subscription once: aborts the connection or the wait, reports "closed". */
  const close = (error?: unknown): void => {
    if (stopped) return;
    stopped = true;
    connection?.abort();
    if (sleepTimer !== undefined) clearTimeout(sleepTimer);
    wakeSleep?.();
    options.signal?.removeEventListener("abort", onAbort);
    safeCall(() =>
      options.onStatus?.(error === undefined ? { state: "closed" } : { state: "closed", error }),
    );
  };
  const onAbort = (): void => close();

  const sleep = (ms: number): Promise<void> =>
    new Promise<void>((resolve) => {
      wakeSleep = resolve;
      sleepTimer = setTimeout(() => {
        sleepTimer = undefined;
        wakeSleep = undefined;
        resolve();
      }, ms);
    });

  const delay = (attempt: number): number =>
    backoffDelay(attempt, {
      ...options.backoff,
      ...(serverRetryMs !== undefined ? { initialMs: serverRetryMs } : {}),
    });

  const handleEvent = (event: SseEvent): void => {
    if (stopped) return;
    if (event.type === "history_truncated") {
      let info: HistoryTruncated;
      try {
        info = JSON.parse(event.data) as HistoryTruncated;
      } catch (error) {
        reportError(error);
        return;
      }
      safeCall(() => options.onHistoryTruncated?.(info));
      return;
    }
    if (event.type === "reset") {
      let info: TopicReset;
      try {
        info = JSON.parse(event.data) as TopicReset;
      } catch (error) {
        reportError(error);
        return;
      }
      safeCall(() => options.onReset?.(info));
      return;
    }
    if (event.type !== "message") return;
    let delivered: TopicMessage<T>;
    try {
      const frame = JSON.parse(event.data) as {
        topic?: unknown;
        message?: unknown;
        published_at?: unknown;
        from?: unknown;
      };
      const message = options.validate
        ? options.validate.parse(frame.message)
        : (frame.message as T);
      delivered = {
        id: event.lastEventId,
        topic: typeof frame.topic === "string" ? frame.topic : single,
        message,
        published_at: typeof frame.published_at === "string" ? frame.published_at : "",
        ...(typeof frame.from === "string" ? { from: frame.from } : {}),
      };
    } catch (error) {
      reportError(error);
      return;
    }
    safeCall(() => onMessage(delivered));
  };

  /** One connection: resolves when the stream ends; throws on failure. */
  const connect = async (): Promise<void> => {
    if (options.getToken) token = await options.getToken();
    if (stopped) throw new Stop();
    const headers: Record<string, string> = { Accept: "text/event-stream" };
    if (token) headers.Authorization = bearer(token);
    if (lastEventId !== "") headers["Last-Event-ID"] = lastEventId;
    const controller = new AbortController();
    connection = controller;
    const idleMs = options.idleTimeoutMs ?? 0;
    let idleTimer: ReturnType<typeof setTimeout> | undefined;
    let idle: IdleTimeout | undefined;
    const touch = (): void => {
      if (idleMs <= 0) return;
      if (idleTimer !== undefined) clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        idle = new IdleTimeout(idleMs);
        controller.abort();
      }, idleMs);
    };
    let parser: SseParser | undefined;
    try {
      touch();
      const response = await ctx.fetch(url, {
        method: "GET",
        headers,
        cache: "no-store",
        signal: controller.signal,
      });
      if (!response.ok) throw await errorFromResponseSafe(response);
      const type = response.headers.get("content-type") ?? "";
      if (!type.toLowerCase().startsWith("text/event-stream") || response.body === null) {
        await response.body?.cancel().catch(() => undefined);
        throw new PiCloudError(
          response.status,
          "bad_stream",
          `expected text/event-stream, got '${type}'`,
        );
      }
      // Open: the reconnect schedule starts over.
      failures = 0;
      unauthorizedInARow = 0;
      status({ state: "open" });
      parser = new SseParser(
        {
          onEvent: (event) => {
            lastEventId = event.lastEventId;
            handleEvent(event);
          },
          onRetry: (ms) => {
            serverRetryMs = ms;
          },
        },
        lastEventId,
      );
      const reader = response.body.getReader();
      const decoder = new TextDecoder("utf-8");
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        touch();
        parser.push(decoder.decode(value, { stream: true }));
        if (stopped) throw new Stop();
      }
      parser.push(decoder.decode());
    } catch (error) {
      if (stopped) throw new Stop();
      if (idle !== undefined) throw idle;
      throw error;
    } finally {
      // Resume after the last complete event, whether or not it carried data.
      if (parser) lastEventId = parser.lastId;
      if (idleTimer !== undefined) clearTimeout(idleTimer);
      controller.abort();
    }
  };

  const run = async (): Promise<void> => {
    while (!stopped) {
      // Attempts are counted from the last successful open.
      status({ state: "connecting", attempt: failures + 1 });
      let failure: unknown;
      try {
        await connect();
        // The stream ended (server restart, topic deleted, proxy timeout): reconnect.
        failure = new PiCloudError(0, "stream_ended", "the event stream ended");
      } catch (error) {
        if (error instanceof Stop || stopped) return;
        failure = error;
      }
      failures += 1;
      let delayMs: number;
      if (failure instanceof PiCloudError && failure.status === 401) {
        if (!options.getToken && !options.onTokenExpired) {
          close(failure);
          return;
        }
        unauthorizedInARow += 1;
        try {
          const fresh = await options.onTokenExpired?.();
          if (typeof fresh === "string") token = fresh;
        } catch (error) {
          reportError(error);
        }
        if (stopped) return;
        // Retry at once with the fresh token; back off if that is refused too.
        delayMs = unauthorizedInARow === 1 ? 0 : delay(unauthorizedInARow - 1);
      } else if (failure instanceof PiCloudError && isFatal(failure.status)) {
        close(failure);
        return;
      } else {
        unauthorizedInARow = 0;
        delayMs = delay(failures);
      }
      reportError(failure);
      status({ state: "reconnecting", attempt: failures, delayMs, error: failure });
      if (delayMs > 0) await sleep(delayMs);
    }
  };

  const publish = async (
    message: unknown,
    publishOptions: { signal?: AbortSignal } = {},
  ): Promise<Published> => {
    if (typeof topic !== "string") {
      throw new TypeError("publish: a subscription to several topics publishes to none");
    }
    const current = options.getToken ? await options.getToken() : token;
    return publishWithToken(ctx, topic, message, current, publishOptions.signal);
  };
  const subscription = (): void => close();
  if (options.signal?.aborted) {
    close();
  } else {
    options.signal?.addEventListener("abort", onAbort, { once: true });
    run().catch((error: unknown) => close(error));
  }
  return Object.assign(subscription, { publish });
}

/** 4xx other than 401 (token), 408 (timeout) and 429 (rate limit) will not get better. */
function isFatal(status: number): boolean {
  return status >= 400 && status < 500 && status !== 401 && status !== 408 && status !== 429;
}

/** The connection was silent for longer than `idleTimeoutMs`. */
export class IdleTimeout extends Error {
  constructor(ms: number) {
    super(`no data for ${ms} ms`);
    this.name = "IdleTimeout";
  }
}

async function errorFromResponseSafe(response: Response): Promise<PiCloudError> {
  try {
    return await errorFromResponse(response);
  } catch {
    return new PiCloudError(response.status, `http_${response.status}`, response.statusText);
  }
}

function safeCall(fn: () => void): void {
  try {
    fn();
  } catch (error) {
    // A throwing callback must not break the stream: report it the way the platform
    // reports uncaught errors, outside the stream's loop.
    setTimeout(() => {
      throw error;
    }, 0);
  }
}

// ---------------------------------------------------------------------------------------
// State for UI bindings (the React hook and the Svelte store share it)

/** A subscription state before anything happened. */
export function initialSubscriptionState<T>(): SubscriptionState<T> {
  return {
    messages: [],
    last: undefined,
    status: { state: "connecting", attempt: 0 },
    error: undefined,
    historyTruncated: undefined,
    reset: undefined,
  };
}

/** `state` with `message` appended, keeping the latest `keep` messages. */
export function withMessage<T>(
  state: SubscriptionState<T>,
  message: TopicMessage<T>,
  keep: number,
): SubscriptionState<T> {
  const messages = state.messages.concat([message]);
  if (messages.length > keep) messages.splice(0, messages.length - keep);
  return { ...state, messages, last: message };
}

/** `state` after `info.topic` started over: its messages go, the other topics' stay. */
export function withoutTopic<T>(state: SubscriptionState<T>, info: TopicReset): SubscriptionState<T> {
  const messages = state.messages.filter((m) => m.topic !== info.topic);
  return { ...state, messages, last: messages.at(-1), reset: info };
}

/** `state` after a status change (a close carries its error, if any). */
export function withStatus<T>(
  state: SubscriptionState<T>,
  status: SubscriptionStatus,
): SubscriptionState<T> {
  return status.state === "closed"
    ? { ...state, status, error: status.error }
    : { ...state, status };
}
