/**
 * React bindings: `useSubscription(topic, options)` keeps the latest messages of a topic
 * in state and ends the subscription on unmount or when the topic changes. The client
 * comes from `options.client` or from a `<PiCloudProvider client={...}>` above.
 */

import { createContext, createElement, useContext, useEffect, useRef, useState } from "react";
import type { ReactNode } from "react";
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
  SubscriptionStatus,
  TopicMessage,
} from "@picloud/client";

export type { SubscriptionState } from "@picloud/client";

const ClientContext = createContext<PiCloudClient | null>(null);

export interface PiCloudProviderProps {
  client: PiCloudClient;
  children?: ReactNode;
}

/** Makes `client` the default for `useSubscription` and `usePiCloud` below it. */
export function PiCloudProvider(props: PiCloudProviderProps): ReactNode {
  return createElement(ClientContext.Provider, { value: props.client }, props.children);
}

/** The client from the nearest `PiCloudProvider`. */
export function usePiCloud(): PiCloudClient {
  const client = useContext(ClientContext);
  if (client === null) throw new Error("usePiCloud: no <PiCloudProvider> above this component");
  return client;
}

export interface UseSubscriptionOptions<T> extends Omit<SubscribeOptions<T>, "signal"> {
  /** The client (default: the one from `PiCloudProvider`). */
  client?: PiCloudClient;
  /** Subscribe only while true (default true). */
  enabled?: boolean;
  /** How many of the latest messages `messages` keeps (default 100). */
  keep?: number;
  /** Also called with each message, e.g. to update other state. */
  onMessage?: (message: TopicMessage<T>) => void;
}

/** The state while there is nothing to subscribe to. */
function idleState<T>(): SubscriptionState<T> {
  return { ...initialSubscriptionState<T>(), status: { state: "closed" } };
}

/**
 * Subscribes to `topic` (nothing while it is null, undefined or `enabled` is false; the
 * status is then "closed" and the messages are cleared).
 * Callbacks, `validate` and `getToken` may change between renders without
 * resubscribing; a change of client, topic, static `token` or `keep` resubscribes.
 */
export function useSubscription<T = unknown>(
  topic: string | readonly string[] | null | undefined,
  options: UseSubscriptionOptions<T> = {},
): SubscriptionState<T> {
  // A list of topics is one stream; a new array with the same topics is the same stream.
  const topicKey = typeof topic === "string" || topic == null ? topic : JSON.stringify(topic);
  const contextClient = useContext(ClientContext);
  const client = options.client ?? contextClient;
  if (client === null) {
    throw new Error("useSubscription: pass options.client or render inside <PiCloudProvider>");
  }
  const idle = topic === null || topic === undefined || !(options.enabled ?? true);
  const [state, setState] = useState<SubscriptionState<T>>(() =>
    idle ? idleState<T>() : initialSubscriptionState<T>(),
  );
  const latest = useRef(options);
  latest.current = options;
  const enabled = options.enabled ?? true;
  const keep = Math.max(1, options.keep ?? 100);
  const token = options.token;

  useEffect(() => {
    if (topicKey === null || topicKey === undefined || !enabled) {
      setState((prev) => (prev.status.state === "closed" ? prev : idleState<T>()));
      return undefined;
    }
    const topics: string | readonly string[] =
      typeof topic === "string" ? topicKey : (JSON.parse(topicKey) as string[]);
    let active = true;
    setState(initialSubscriptionState<T>());
    const current = latest.current;
    const firstValidate = current.validate;
    const unsubscribe = client.subscribe<T>(
      topics,
      (message) => {
        if (!active) return;
        setState((prev) => withMessage(prev, message, keep));
        latest.current.onMessage?.(message);
      },
      {
        ...(token !== undefined ? { token } : {}),
        ...(current.lastEventId !== undefined ? { lastEventId: current.lastEventId } : {}),
        ...(current.backoff !== undefined ? { backoff: current.backoff } : {}),
        ...(current.idleTimeoutMs !== undefined ? { idleTimeoutMs: current.idleTimeoutMs } : {}),
        ...(current.getToken ? { getToken: () => latest.current.getToken?.() } : {}),
        ...(current.onTokenExpired
          ? { onTokenExpired: () => latest.current.onTokenExpired?.() }
          : {}),
        ...(firstValidate
          ? {
              validate: {
                parse: (input) => (latest.current.validate ?? firstValidate).parse(input),
              },
            }
          : {}),
        onStatus: (status) => {
          if (active) setState((prev) => withStatus(prev, status));
          latest.current.onStatus?.(status);
        },
        onError: (error) => {
          if (active) setState((prev) => ({ ...prev, error }));
          latest.current.onError?.(error);
        },
        onHistoryTruncated: (info) => {
          if (active) setState((prev) => ({ ...prev, historyTruncated: info }));
          latest.current.onHistoryTruncated?.(info);
        },
        onReset: (info) => {
          // The topic started over: what was kept of it is from its previous incarnation.
          if (active) setState((prev) => withoutTopic(prev, info));
          latest.current.onReset?.(info);
        },
        onPresence: (change) => {
          if (active) setState((prev) => withPresenceChange(prev, change));
          latest.current.onPresence?.(change);
        },
      },
    );
    return () => {
      active = false;
      unsubscribe();
    };
    // topicKey stands for topic (a list compared by its contents).
  }, [client, topicKey, enabled, token, keep]);

  return state;
}

/** Who is on a presence topic, and the stream's status. */
export interface PresenceState {
  /** Present subjects -> their token's info (null: none). */
  present: Readonly<Record<string, JsonValue | null>>;
  status: SubscriptionStatus;
  error: unknown;
}

/**
 * Who is present on `topic` (a topic with presence), kept up to date from its stream: a
 * subject appears on its first connection anywhere and goes after its last. With a token
 * that names a subject, this component's user is present too while it is mounted.
 */
export function usePresence(
  topic: string | null | undefined,
  options: UseSubscriptionOptions<unknown> = {},
): PresenceState {
  const state = useSubscription<unknown>(topic, { keep: 1, ...options });
  return {
    present: (topic ? state.presence[topic] : undefined) ?? {},
    status: state.status,
    error: state.error,
  };
}
