/**
 * Svelte bindings: `subscriptionStore(client, topic, options)` is a readable store of a
 * topic's latest messages. It subscribes when the first component subscribes to the store
 * and ends the subscription when the last one goes away; a later first subscriber resumes
 * after the last message the store delivered.
 */

import { derived, readable } from "svelte/store";
import type { Readable } from "svelte/store";
import {
  initialSubscriptionState,
  withMessage,
  withPresenceChange,
  withStatus,
  withoutTopic,
} from "@picloud/client";
import type {
  JsonValue,
  PiCloudClient,
  SubscribeOptions,
  SubscriptionState,
} from "@picloud/client";

export type { SubscriptionState } from "@picloud/client";

export interface SubscriptionStoreOptions<T> extends Omit<SubscribeOptions<T>, "signal"> {
  /** How many of the latest messages `messages` keeps (default 100). */
  keep?: number;
}

/** A readable store of `topic`'s messages: `$messages.last`, `$messages.status`, … */
export function subscriptionStore<T = unknown>(
  client: PiCloudClient,
  topic: string | readonly string[],
  options: SubscriptionStoreOptions<T> = {},
): Readable<SubscriptionState<T>> {
  const keep = Math.max(1, options.keep ?? 100);
  const initial = initialSubscriptionState<T>();
  // Kept across stop/start, so that a store that loses its last subscriber and gets a
  // new one resumes after the last message it delivered.
  let state = initial;
  return readable(initial, (set) => {
    let active = true;
    const update = (next: SubscriptionState<T>): void => {
      if (!active) return;
      state = next;
      set(state);
    };
    const { keep: _keep, lastEventId, ...subscribeOptions } = options;
    const resumeFrom = state.last?.id ?? lastEventId;
    const unsubscribe = client.subscribe<T>(
      topic,
      (message) => update(withMessage(state, message, keep)),
      {
        ...subscribeOptions,
        ...(resumeFrom !== undefined ? { lastEventId: resumeFrom } : {}),
        onStatus: (status) => {
          update(withStatus(state, status));
          options.onStatus?.(status);
        },
        onError: (error) => {
          update({ ...state, error });
          options.onError?.(error);
        },
        onHistoryTruncated: (info) => {
          update({ ...state, historyTruncated: info });
          options.onHistoryTruncated?.(info);
        },
        onReset: (info) => {
          // The topic started over: what was kept of it is from its previous incarnation.
          update(withoutTopic(state, info));
          options.onReset?.(info);
        },
        onPresence: (change) => {
          update(withPresenceChange(state, change));
          options.onPresence?.(change);
        },
      },
    );
    return () => {
      active = false;
      unsubscribe();
    };
  });
}

/**
 * A readable store of who is present on `topic` (a topic with presence): subject -> the
 * info of its token (null: none). Subscribes like `subscriptionStore`; with a token that
 * names a subject, this client's user is present while the store has subscribers.
 */
export function presenceStore(
  client: PiCloudClient,
  topic: string,
  options: SubscriptionStoreOptions<unknown> = {},
): Readable<Readonly<Record<string, JsonValue | null>>> {
  return derived(
    subscriptionStore<unknown>(client, topic, { keep: 1, ...options }),
    (state) => state.presence[topic] ?? {},
  );
}
