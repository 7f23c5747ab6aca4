/**
 * Subscription state for UI bindings (the React hook and the Svelte store share it):
 * pure functions from one state to the next.
 */

import type { SubscriptionState, SubscriptionStatus, TopicMessage, TopicReset } from "./types";

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
