/**
 * Svelte bindings: `subscriptionStore(client, topic, options)` is a readable store of a
 * topic's latest messages. It subscribes when the first component subscribes to the store
 * and ends the subscription when the last one goes away; a later first subscriber resumes
 * after the last message the store delivered.
 */

import { readable } from "svelte/store";
import type { Readable } from "svelte/store";
import type {
  HistoryTruncated,
  PiCloudClient,
  SubscribeOptions,
  SubscriptionStatus,
  TopicMessage,
} from "@picloud/client";

export interface SubscriptionStoreOptions<T> extends Omit<SubscribeOptions<T>, "signal"> {
  /** How many of the latest messages `messages` keeps (default 100). */
  keep?: number;
}

export interface SubscriptionState<T> {
  /** The latest messages, oldest first, at most `keep` of them. */
  messages: TopicMessage<T>[];
  /** The most recent message. */
  last: TopicMessage<T> | undefined;
  status: SubscriptionStatus;
  /** The most recent error (a failed attempt, a bad payload, or what closed it). */
  error: unknown;
  /** Set when the server could not replay from the requested position. */
  historyTruncated: HistoryTruncated | undefined;
}

/** A readable store of `topic`'s messages: `$messages.last`, `$messages.status`, … */
export function subscriptionStore<T = unknown>(
  client: PiCloudClient,
  topic: string,
  options: SubscriptionStoreOptions<T> = {},
): Readable<SubscriptionState<T>> {
  const keep = Math.max(1, options.keep ?? 100);
  const initial: SubscriptionState<T> = {
    messages: [],
    last: undefined,
    status: { state: "connecting", attempt: 0 },
    error: undefined,
    historyTruncated: undefined,
  };
  // Kept across stop/start, so that a store that loses its last subscriber and gets a
  // new one resumes after the last message it delivered.
  let state = initial;
  return readable(initial, (set) => {
    let active = true;
    const update = (next: Partial<SubscriptionState<T>>): void => {
      if (!active) return;
      state = { ...state, ...next };
      set(state);
    };
    const { keep: _keep, lastEventId, ...subscribeOptions } = options;
    const resumeFrom = state.last?.id ?? lastEventId;
    const unsubscribe = client.subscribe<T>(
      topic,
      (message) => {
        const messages = state.messages.concat([message]);
        if (messages.length > keep) messages.splice(0, messages.length - keep);
        update({ messages, last: message });
      },
      {
        ...subscribeOptions,
        ...(resumeFrom !== undefined ? { lastEventId: resumeFrom } : {}),
        onStatus: (status) => {
          update(status.state === "closed" ? { status, error: status.error } : { status });
          options.onStatus?.(status);
        },
        onError: (error) => {
          update({ error });
          options.onError?.(error);
        },
        onHistoryTruncated: (info) => {
          update({ historyTruncated: info });
          options.onHistoryTruncated?.(info);
        },
      },
    );
    return () => {
      active = false;
      unsubscribe();
    };
  });
}
