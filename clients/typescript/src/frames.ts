/**
 * Frame dispatch: an event from the stream becomes a `TopicMessage` for `onMessage`, or a
 * `history_truncated` / `reset` notice; other event types are ignored.
 */

import type { HistoryTruncated, SubscribeOptions, TopicMessage, TopicReset } from "./types";
import type { SseEvent } from "./sse";
import { safeCall } from "./callbacks";

/** The JSON of a `message` event, before it is checked. */
interface MessageFrame {
  topic?: unknown;
  message?: unknown;
  published_at?: unknown;
  from?: unknown;
}

/**
 * The message a `message` event carries. `single` is the topic of a one-topic stream,
 * whose frames may leave `topic` out. Throws on bad JSON or a payload `validate` refuses.
 */
export function messageFromEvent<T>(
  event: SseEvent,
  single: string,
  validate: SubscribeOptions<T>["validate"],
): TopicMessage<T> {
  const frame = JSON.parse(event.data) as MessageFrame;
  const message = validate ? validate.parse(frame.message) : (frame.message as T);
  return {
    id: event.lastEventId,
    topic: typeof frame.topic === "string" ? frame.topic : single,
    message,
    published_at: typeof frame.published_at === "string" ? frame.published_at : "",
    ...(typeof frame.from === "string" ? { from: frame.from } : {}),
  };
}

/** Where the events of one subscription go. */
export interface FrameTargets<T> {
  onMessage: (message: TopicMessage<T>) => void;
  options: SubscribeOptions<T>;
  /** A frame that cannot be read (bad JSON, refused by `validate`). */
  reportError: (error: unknown) => void;
}

/** The function that sends each event of a stream to its callback. */
export function frameDispatcher<T>(
  single: string,
  { onMessage, options, reportError }: FrameTargets<T>,
): (event: SseEvent) => void {
  /** Parses `event`'s data with `read`, or reports why it could not. */
  const deliver = <V>(read: () => V, to: (value: V) => void): void => {
    let value: V;
    try {
      value = read();
    } catch (error) {
      reportError(error);
      return;
    }
    safeCall(() => to(value));
  };
  return (event) => {
    switch (event.type) {
      case "history_truncated":
        deliver(
          () => JSON.parse(event.data) as HistoryTruncated,
          (info) => options.onHistoryTruncated?.(info),
        );
        return;
      case "reset":
        deliver(
          () => JSON.parse(event.data) as TopicReset,
          (info) => options.onReset?.(info),
        );
        return;
      case "message":
        deliver(() => messageFromEvent(event, single, options.validate), onMessage);
        return;
      default:
        return;
    }
  };
}
