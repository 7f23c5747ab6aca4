export { createClient } from "./client";
export type { ClientOptions, PiCloudClient } from "./client";
export { PiCloudError, errorFromResponse, isErrorEnvelope, joinUrl } from "./endpoint";
export type { Endpoint, QueryValue, RequestOptions } from "./endpoint";
export { SseParser } from "./sse";
export type { SseEvent, SseParserHandlers } from "./sse";
export { DEFAULT_BACKOFF, backoffDelay } from "./reconnect";
export { IdleTimeout } from "./stream";
export { publishWithToken } from "./publish";
export { streamUrl, topicUrl } from "./urls";
export { initialSubscriptionState, withMessage, withStatus, withoutTopic } from "./state";
export { bearer } from "./bearer";
export { mintSubscriberToken, tokenCache } from "./auth";
export type { MintTokenOptions, SubscriberToken, TokenCache, TokenCacheOptions } from "./auth";
export type {
  BackoffOptions,
  ErrorEnvelope,
  FetchLike,
  HistoryTruncated,
  JsonValue,
  PublishOptions,
  Published,
  SubscribeOptions,
  Subscription,
  SubscriptionState,
  SubscriptionStatus,
  TokenResult,
  TopicMessage,
  TopicReset,
  Unsubscribe,
  Validator,
} from "./types";

/** This package's version. */
export const VERSION = "1.0.0";
