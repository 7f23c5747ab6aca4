export { createClient } from "./client";
export type { ClientOptions, PiCloudClient } from "./client";
export { PiCloudError, errorFromResponse, isErrorEnvelope, joinUrl } from "./endpoint";
export type { Endpoint, QueryValue, RequestOptions } from "./endpoint";
export {
  DEFAULT_BACKOFF,
  IdleTimeout,
  SseParser,
  backoffDelay,
  initialSubscriptionState,
  publishWithToken,
  streamUrl,
  topicUrl,
  withMessage,
  withStatus,
  withoutTopic,
} from "./subscribe";
export type { SseEvent, SseParserHandlers } from "./subscribe";
export { bearer, mintSubscriberToken, tokenCache } from "./auth";
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
