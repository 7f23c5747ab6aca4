/**
 * One connection of a subscription: the streaming `fetch`, the checks on its answer, and
 * the byte stream fed through the event-stream parser, with an optional idle timeout.
 */

import type { FetchLike, TokenResult } from "./types";
import { PiCloudError, errorFromResponseSafe } from "./endpoint";
import { bearer } from "./bearer";
import { SseParser } from "./sse";
import type { SseEvent } from "./sse";

/** The connection was silent for longer than `idleTimeoutMs`. */
export class IdleTimeout extends Error {
  constructor(ms: number) {
    super(`no data for ${ms} ms`);
    this.name = "IdleTimeout";
  }
}

/** Where a stream resumes: the id of the last complete event (`Last-Event-ID`). */
export interface Cursor {
  lastEventId: string;
}

export interface StreamRequest {
  fetch: FetchLike;
  url: string;
  token: TokenResult;
  /** Read before the request and kept current while the stream runs. */
  cursor: Cursor;
  /** Abort after this long without data (0: never). */
  idleTimeoutMs: number;
  /** Aborting it ends the connection. */
  controller: AbortController;
}

export interface StreamHandlers {
  /** The answer is an event stream. */
  onOpen: () => void;
  onEvent: (event: SseEvent) => void;
  onRetry: (ms: number) => void;
  /** True once the subscription ended: reading stops. */
  stopped: () => boolean;
}

/** The request headers of a (re)connection. */
export function streamHeaders(token: TokenResult, lastEventId: string): Record<string, string> {
  const headers: Record<string, string> = { Accept: "text/event-stream" };
  if (token) headers.Authorization = bearer(token);
  if (lastEventId !== "") headers["Last-Event-ID"] = lastEventId;
  return headers;
}

/** The response's body when it is an event stream; throws the server's error otherwise. */
async function eventStreamBody(response: Response): Promise<ReadableStream<Uint8Array>> {
  if (!response.ok) throw await errorFromResponseSafe(response);
  const type = response.headers.get("content-type") ?? "";
  if (!type.toLowerCase().startsWith("text/event-stream") || response.body === null) {
    await response.body?.cancel().catch(() => undefined);
    throw new PiCloudError(response.status, "bad_stream", `expected text/event-stream, got '${type}'`);
  }
  return response.body;
}

/** A timer that aborts `controller` after `ms` without a `touch()` (never when `ms` ≤ 0). */
class IdleWatch {
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Set when the timer fired. */
  expired: IdleTimeout | undefined;

  constructor(
    private readonly ms: number,
    private readonly controller: AbortController,
  ) {}

  touch(): void {
    if (this.ms <= 0) return;
    this.clear();
    this.timer = setTimeout(() => {
      this.expired = new IdleTimeout(this.ms);
      this.controller.abort();
    }, this.ms);
  }

  clear(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
  }
}

/**
 * Runs one connection until the stream ends (resolves) or fails (throws; an idle stream
 * throws `IdleTimeout`). Events go to `handlers` as they complete.
 */
export async function readStream(request: StreamRequest, handlers: StreamHandlers): Promise<void> {
  const { controller, cursor } = request;
  const idle = new IdleWatch(request.idleTimeoutMs, controller);
  let parser: SseParser | undefined;
  try {
    idle.touch();
    const response = await request.fetch(request.url, {
      method: "GET",
      headers: streamHeaders(request.token, cursor.lastEventId),
      cache: "no-store",
      signal: controller.signal,
    });
    const body = await eventStreamBody(response);
    handlers.onOpen();
    parser = new SseParser(
      {
        onEvent: (event) => {
          cursor.lastEventId = event.lastEventId;
          handlers.onEvent(event);
        },
        onRetry: handlers.onRetry,
      },
      cursor.lastEventId,
    );
    const reader = body.getReader();
    const decoder = new TextDecoder("utf-8");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      idle.touch();
      parser.push(decoder.decode(value, { stream: true }));
      if (handlers.stopped()) return;
    }
    parser.push(decoder.decode());
  } catch (error) {
    if (!handlers.stopped() && idle.expired !== undefined) throw idle.expired;
    throw error;
  } finally {
    // Resume after the last complete event, whether or not it carried data.
    if (parser) cursor.lastEventId = parser.lastId;
    idle.clear();
    controller.abort();
  }
}
