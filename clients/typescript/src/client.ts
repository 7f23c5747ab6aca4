/** `createClient`: one object holding the base URL, the `fetch` and the API key. */

import type { Endpoint } from "./endpoint";
import { endpoint } from "./endpoint";
import type { MintTokenOptions, SubscriberToken } from "./auth";
import { mintSubscriberToken } from "./auth";
import { publishWithToken } from "./publish";
import { subscribe } from "./subscribe";
import type {
  FetchLike,
  PublishOptions,
  Published,
  SubscribeOptions,
  Subscription,
  TopicMessage,
} from "./types";

export interface ClientOptions {
  /**
   * The app's origin, e.g. `https://chat.example.com` or `http://myapp.localhost:8080`:
   * realtime streams are routed by host name to the app.
   */
  baseUrl: string;
  /** A `fetch` to use instead of the global one (tests, polyfills, React Native). */
  fetch?: FetchLike;
  /**
   * An API key for the control plane (`/api/v1/...`), sent as `Authorization: Bearer`.
   * For server-side code only: never ship an API key to a browser.
   */
  apiKey?: string;
  /** Headers added to every JSON call. */
  headers?: Record<string, string>;
}

export interface PiCloudClient {
  readonly baseUrl: string;
  /** Typed JSON calls on a path under `baseUrl`. */
  endpoint(path: string): Endpoint;
  /**
   * Live messages of a topic, or of several over one connection (pass a list); returns
   * the function that ends the subscription, which also publishes to a single topic with
   * the subscription's token (`stop.publish(message)`).
   */
  subscribe<T = unknown>(
    topic: string | readonly string[],
    onMessage: (message: TopicMessage<T>) => void,
    options?: SubscribeOptions<T>,
  ): Subscription;
  /** Publishes to a topic with a subscriber token minted with `publish: true`. */
  publish(topic: string, message: unknown, options: PublishOptions): Promise<Published>;
  /** Mints a subscriber token (server side; needs an API key with `tokens:mint`). */
  mintToken(options: MintTokenOptions): Promise<SubscriberToken>;
}

export function createClient(options: ClientOptions): PiCloudClient {
  if (typeof options.baseUrl !== "string" || options.baseUrl === "") {
    throw new TypeError("createClient: baseUrl is required");
  }
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const fetchImpl: FetchLike = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const ctx = {
    baseUrl,
    fetch: fetchImpl,
    ...(options.apiKey !== undefined ? { apiKey: options.apiKey } : {}),
    ...(options.headers !== undefined ? { headers: options.headers } : {}),
  };
  return {
    baseUrl,
    endpoint: (path) => endpoint(ctx, path),
    subscribe: (topic, onMessage, subscribeOptions) =>
      subscribe(ctx, topic, onMessage, subscribeOptions),
    mintToken: (mintOptions) => mintSubscriberToken(ctx, mintOptions),
    publish: (topic, message, publishOptions) =>
      publishWithToken(ctx, topic, message, publishOptions.token, publishOptions.signal),
  };
}
