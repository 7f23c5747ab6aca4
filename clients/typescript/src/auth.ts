/**
 * Tokens. Subscriber tokens are minted by your backend with an API key that has
 * `tokens:mint` (the browser never sees that key) and handed to the browser, which
 * subscribes with them. `tokenCache` keeps one until shortly before it expires.
 */

import type { EndpointContext } from "./endpoint";
import { endpoint } from "./endpoint";

export { bearer } from "./bearer";

/** A minted subscriber token, as `POST …/topics/{name}/tokens` returns it. */
export interface SubscriberToken {
  token: string;
  /** ISO 8601 expiry. */
  expires_at: string;
}

export interface MintTokenOptions {
  appId: string;
  /** The topic the token is for (or `topics`). */
  topic?: string;
  /** Several topics: a token for one stream of all of them (`subscribe([...])`); it cannot publish. */
  topics?: readonly string[];
  /** Lifetime in seconds (the server's default when left out). */
  ttlSeconds?: number;
  /** Let the token publish to its topic too (the API key needs `topics:publish` as well). */
  publish?: boolean;
  /** Who holds the token: the frames it publishes carry it as `from`. */
  subject?: string;
  signal?: AbortSignal;
}

const subscriberTokenValidator = {
  parse(input: unknown): SubscriberToken {
    if (
      typeof input === "object" &&
      input !== null &&
      typeof (input as { token?: unknown }).token === "string" &&
      typeof (input as { expires_at?: unknown }).expires_at === "string"
    ) {
      const { token, expires_at } = input as SubscriberToken;
      return { token, expires_at };
    }
    throw new TypeError("not a subscriber token response");
  },
};

/**
 * Mints a subscriber token for one topic or several (server side: needs an API key with
 * `tokens:mint` for the app).
 */
export function mintSubscriberToken(
  ctx: EndpointContext,
  options: MintTokenOptions,
): Promise<SubscriberToken> {
  const app = `/api/v1/apps/${encodeURIComponent(options.appId)}`;
  if (options.topics !== undefined) {
    if (options.publish) throw new TypeError("mintToken: a token for several topics cannot publish");
    const body = {
      topics: [...options.topics],
      ...(options.ttlSeconds === undefined ? {} : { ttl_seconds: options.ttlSeconds }),
      ...(options.subject === undefined ? {} : { subject: options.subject }),
    };
    return endpoint(ctx, `${app}/tokens`).post(body, {
      validate: subscriberTokenValidator,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }
  if (options.topic === undefined) throw new TypeError("mintToken: topic or topics is required");
  const path = `${app}/topics/${encodeURIComponent(options.topic)}/tokens`;
  const body = {
    ...(options.ttlSeconds === undefined ? {} : { ttl_seconds: options.ttlSeconds }),
    ...(options.publish === undefined ? {} : { publish: options.publish }),
    ...(options.subject === undefined ? {} : { subject: options.subject }),
  };
  return endpoint(ctx, path).post(body, {
    validate: subscriberTokenValidator,
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

export interface TokenCacheOptions {
  /** Fetch a new token this long before the cached one expires (default 30 s). */
  refreshBeforeMs?: number;
  /** The clock, for tests (default `Date.now`). */
  now?: () => number;
}

/** A cached token source: pass `get` as `getToken` and `invalidate` as `onTokenExpired`. */
export interface TokenCache {
  get: () => Promise<string>;
  invalidate: () => void;
}

/**
 * Caches the token `load` returns (for example from your backend's
 * `/realtime-token` route) until `refreshBeforeMs` before its `expires_at`; concurrent
 * callers share one load.
 */
export function tokenCache(
  load: () => Promise<SubscriberToken>,
  options: TokenCacheOptions = {},
): TokenCache {
  const margin = options.refreshBeforeMs ?? 30_000;
  const now = options.now ?? Date.now;
  let cached: { token: string; refreshAt: number } | undefined;
  let pending: Promise<string> | undefined;
  return {
    get: () => {
      if (cached && now() < cached.refreshAt) return Promise.resolve(cached.token);
      if (!pending) {
        pending = load()
          .then((minted) => {
            const expires = Date.parse(minted.expires_at);
            const refreshAt = Number.isNaN(expires) ? 0 : expires - margin;
            cached = { token: minted.token, refreshAt };
            return minted.token;
          })
          .finally(() => {
            pending = undefined;
          });
      }
      return pending;
    },
    invalidate: () => {
      cached = undefined;
    },
  };
}
