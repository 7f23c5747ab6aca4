/**
 * Realtime subscriptions: Server-Sent Events read from a streaming `fetch` (not
 * EventSource), so that the client can send `Authorization` and `Last-Event-ID`, see a
 * 401 and refresh the token, and choose its own reconnect schedule.
 *
 * `subscribe` only composes the parts: the URL (`urls.ts`), one connection and its byte
 * stream (`stream.ts`, parsed by `sse.ts`), frame dispatch (`frames.ts`), the token
 * (`token.ts`), the reconnect schedule (`reconnect.ts`) and the subscription's life
 * (`lifetime.ts`).
 */

import type { Published, SubscribeOptions, Subscription, TopicMessage } from "./types";
import { PiCloudError } from "./endpoint";
import { frameDispatcher } from "./frames";
import { Lifetime } from "./lifetime";
import { publishWithToken } from "./publish";
import type { SubscribeContext } from "./publish";
import { ReconnectSchedule } from "./reconnect";
import { readStream } from "./stream";
import type { Cursor } from "./stream";
import { SubscriptionToken } from "./token";
import { streamUrl, topicUrl } from "./urls";

export { SseParser } from "./sse";
export type { SseEvent, SseParserHandlers } from "./sse";
export { DEFAULT_BACKOFF, backoffDelay } from "./reconnect";
export { IdleTimeout } from "./stream";
export { publishWithToken } from "./publish";
export type { SubscribeContext } from "./publish";
export { streamUrl, topicUrl } from "./urls";
export { initialSubscriptionState, withMessage, withStatus, withoutTopic } from "./state";

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
  const life = new Lifetime(options);
  const token = new SubscriptionToken(options);
  const schedule = new ReconnectSchedule(options.backoff, token.refreshable);
  const cursor: Cursor = { lastEventId: options.lastEventId ?? "" };
  const dispatch = frameDispatcher(typeof topic === "string" ? topic : "", {
    onMessage,
    options,
    reportError: (error) => life.reportError(error),
  });

  /** One connection: resolves when the stream ends; throws on failure. */
  const connect = async (): Promise<void> => {
    const current = await token.forConnection();
    if (life.stopped) return;
    await readStream(
      {
        fetch: ctx.fetch,
        url,
        token: current,
        cursor,
        idleTimeoutMs: options.idleTimeoutMs ?? 0,
        controller: life.newConnection(),
      },
      {
        onOpen: () => {
          schedule.opened();
          life.status({ state: "open" });
        },
        onEvent: (event) => {
          if (!life.stopped) dispatch(event);
        },
        onRetry: (ms) => schedule.serverRetry(ms),
        stopped: () => life.stopped,
      },
    );
  };

  const run = async (): Promise<void> => {
    while (!life.stopped) {
      life.status({ state: "connecting", attempt: schedule.nextAttempt });
      let failure: unknown;
      try {
        await connect();
        if (life.stopped) return;
        // The stream ended (server restart, topic deleted, proxy timeout): reconnect.
        failure = new PiCloudError(0, "stream_ended", "the event stream ended");
      } catch (error) {
        if (life.stopped) return;
        failure = error;
      }
      const next = schedule.failed(failure);
      if (next.action === "close") {
        life.close(failure);
        return;
      }
      if (next.action === "refresh-token") {
        await token.refresh((error) => life.reportError(error));
        if (life.stopped) return;
      }
      life.reportError(failure);
      life.status({
        state: "reconnecting",
        attempt: schedule.failedAttempts,
        delayMs: next.delayMs,
        error: failure,
      });
      if (next.delayMs > 0) await life.sleep(next.delayMs);
    }
  };

  const publish = async (
    message: unknown,
    publishOptions: { signal?: AbortSignal } = {},
  ): Promise<Published> => {
    if (typeof topic !== "string") {
      throw new TypeError("publish: a subscription to several topics publishes to none");
    }
    return publishWithToken(ctx, topic, message, await token.forPublish(), publishOptions.signal);
  };
  if (life.start()) run().catch((error: unknown) => life.close(error));
  return Object.assign((): void => life.close(), { publish });
}
