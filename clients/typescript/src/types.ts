/**
 * Shared types of @picloud/client. Nothing here has a runtime cost.
 */

/**
 * Anything that turns unknown input into a `T` or throws. A Zod schema fits as is
 * (`z.object({...})`); a Valibot schema in one line:
 * `const validate = { parse: (input: unknown) => v.parse(schema, input) }`.
 */
export interface Validator<T> {
  parse(input: unknown): T;
}

/** The `fetch` the client uses: the global one by default, or any compatible function. */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** JSON as the server sends it. */
export type JsonValue =
  string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** The server's error envelope: `{"error": {"code": "...", "message": "..."}}`. */
export interface ErrorEnvelope {
  error: { code: string; message: string };
}

/** One message delivered on a topic. */
export interface TopicMessage<T = unknown> {
  /** The SSE event id: an opaque resume cursor (pass it back as `lastEventId`). */
  id: string;
  /** The topic it was published on. */
  topic: string;
  /** The published JSON value, after `validate` when one is given. */
  message: T;
  /** When the server accepted it (ISO 8601). */
  published_at: string;
  /** The subject of the subscriber token that published it, when it had one. */
  from?: string;
}

/** What a publish returns: the message's sequence number and when it was accepted. */
export interface Published {
  id: number;
  published_at: string;
}

export interface PublishOptions {
  /**
   * A subscriber token minted with `publish: true` for this topic (sent as
   * `Authorization: Bearer`).
   */
  token: string;
  signal?: AbortSignal;
}

/**
 * A live subscription: call it to end it (it is the `Unsubscribe` function), or publish
 * to its topic with its own token (which must grant publish).
 */
export interface Subscription extends Unsubscribe {
  /**
   * Publish `message` (any JSON value) to this subscription's topic with the
   * subscription's current token. Rejects with a `PiCloudError`: 401 when the token does
   * not grant publish, 404 for a missing topic, 413 too large, 429 over the token's rate
   * (retry after the `Retry-After` seconds in `error.retryAfterSeconds`).
   */
  publish(message: unknown, options?: { signal?: AbortSignal }): Promise<Published>;
}

/**
 * Sent by the server when the requested `Last-Event-ID` is older than its retained log:
 * messages between `requested` and `oldest` are gone, the retained ones follow. Refetch
 * whatever state you derive from the topic.
 */
export interface HistoryTruncated {
  requested: number;
  oldest: number;
  /** Which topic, on a stream of several. */
  topic?: string;
}

/**
 * Sent by the server when the resume position is not one of the topic's current
 * incarnation: the topic was deleted and created again (a new `epoch`), or the position is
 * beyond its last message. The stream starts over from the incarnation's first retained
 * message (`oldest`, or null when it has none): drop whatever state you derived from the
 * topic before.
 */
export interface TopicReset {
  topic: string;
  epoch: number;
  oldest: number | null;
}

/**
 * On a topic with presence: `subject` joined (its first connection anywhere in the
 * cluster) or left (after its last). `info` is what its token carries (null: none). A
 * stream is first told of everyone already present, as joins, on every (re)connect.
 */
export interface PresenceEvent {
  topic: string;
  event: "joined" | "left";
  subject: string;
  info: JsonValue | null;
}

/** Who is present, per topic: subject -> info (null: none). */
export type PresenceMap = Readonly<Record<string, Readonly<Record<string, JsonValue | null>>>>;

/**
 * Where a subscription is in its life. `attempt` counts connection attempts since the
 * last successful open (1 for the first); `delayMs` is the wait before the next one.
 */
export type SubscriptionStatus =
  | { state: "connecting"; attempt: number }
  | { state: "open" }
  | { state: "reconnecting"; attempt: number; delayMs: number; error: unknown }
  | { state: "closed"; error?: unknown };

/** A token, or nothing for public topics; may be computed asynchronously. */
export type TokenResult = string | null | undefined;

/** Backoff between reconnects: `initialMs`, times `factor` per failed attempt, at most `maxMs`. */
export interface BackoffOptions {
  /** First delay (default 1000 ms). A `retry:` field from the server replaces it. */
  initialMs?: number;
  /** Growth per failed attempt (default 2). */
  factor?: number;
  /** Upper bound (default 30000 ms). */
  maxMs?: number;
  /** Fraction of each delay that is random (default 0.2: a delay lies in [0.8 d, d]). */
  jitter?: number;
}

export interface SubscribeOptions<T = unknown> {
  /** A subscriber token sent as `Authorization: Bearer`. */
  token?: string;
  /**
   * Called before every connection attempt (the first one and each reconnect) for a
   * fresh token. Takes precedence over `token`.
   */
  getToken?: () => TokenResult | Promise<TokenResult>;
  /**
   * Called when the server answers 401 (token missing, expired or not valid for this
   * topic). A string it returns becomes the token for the next attempts; then the
   * subscription reconnects. Without `getToken` or `onTokenExpired`, a 401 closes the
   * subscription.
   */
  onTokenExpired?: () => TokenResult | void | Promise<TokenResult | void>;
  /** Checks each message's payload; a message that fails goes to `onError` and is skipped. */
  validate?: Validator<T>;
  /** Resume after this event id (sent as `Last-Event-ID` on the first connection). */
  lastEventId?: string;
  /** Told about every change of state. */
  onStatus?: (status: SubscriptionStatus) => void;
  /** Told when the server could not replay from the requested position. */
  onHistoryTruncated?: (info: HistoryTruncated) => void;
  /** Told when the topic started over (created again, or the position was beyond its end). */
  onReset?: (info: TopicReset) => void;
  /** Told of each join and leave on a topic with presence (see `PresenceEvent`). */
  onPresence?: (event: PresenceEvent) => void;
  /** Told about errors that do not end the subscription (bad payloads, failed attempts). */
  onError?: (error: unknown) => void;
  /** Aborting it ends the subscription, like calling the returned function. */
  signal?: AbortSignal;
  /** Reconnect schedule. */
  backoff?: BackoffOptions;
  /**
   * Reconnect when nothing (not even a heartbeat) arrives for this long. 0 (the default)
   * turns it off; set it above the server's heartbeat interval.
   */
  idleTimeoutMs?: number;
}

/** What the React hook and the Svelte store hold for a subscription. */
export interface SubscriptionState<T = unknown> {
  /** The latest messages, oldest first, at most `keep` of them. */
  messages: TopicMessage<T>[];
  /** The most recent message. */
  last: TopicMessage<T> | undefined;
  status: SubscriptionStatus;
  /** The most recent error (a failed attempt, a bad payload, or what closed it). */
  error: unknown;
  /** Set when the server could not replay from the requested position. */
  historyTruncated: HistoryTruncated | undefined;
  /** Set when the topic started over; `messages` then holds only the new incarnation's. */
  reset: TopicReset | undefined;
  /** Who is present on the subscription's presence topics (empty for other topics). */
  presence: PresenceMap;
}

/** Ends a subscription. Calling it again does nothing. */
export type Unsubscribe = () => void;
