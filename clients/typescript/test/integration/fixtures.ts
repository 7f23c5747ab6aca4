/** Helpers for integration tests: an app, topics, publishing and tokens over the real API. */

import { randomBytes } from "node:crypto";
import { createClient } from "../../src/index";
import type {
  FetchLike,
  HistoryTruncated,
  PiCloudClient,
  SubscribeOptions,
  SubscriberToken,
  SubscriptionStatus,
  TopicMessage,
} from "../../src/index";

export interface TestApp {
  /** The app's origin (its domain is 127.0.0.1). */
  url: string;
  adminKey: string;
  appId: string;
  slug: string;
}

interface AppRow {
  id: string;
  slug: string;
}

const appValidator = {
  parse(input: unknown): AppRow {
    const row = input as Partial<AppRow> | null;
    if (typeof row?.id !== "string" || typeof row.slug !== "string")
      throw new TypeError("not an app");
    return { id: row.id, slug: row.slug };
  },
};

/** Creates an app and makes `127.0.0.1` its domain, so `url` routes realtime to it. */
export async function setUpApp(url: string, adminKey: string): Promise<TestApp> {
  const admin = createClient({ baseUrl: url, apiKey: adminKey });
  const slug = `it-${randomBytes(4).toString("hex")}`;
  const app = await admin
    .endpoint("/api/v1/apps")
    .post({ slug, name: "client integration tests" }, { validate: appValidator });
  await admin.endpoint(`/api/v1/apps/${app.id}/domains`).post({ host: "127.0.0.1" });
  return { url, adminKey, appId: app.id, slug };
}

export function adminClient(app: TestApp): PiCloudClient {
  return createClient({ baseUrl: app.url, apiKey: app.adminKey });
}

export function uniqueTopic(prefix: string): string {
  return `${prefix}.${randomBytes(4).toString("hex")}`;
}

export interface TopicSettings {
  auth_mode?: "public" | "token";
  external_subscribable?: boolean;
}

export async function createTopic(
  app: TestApp,
  name: string,
  settings: TopicSettings = {},
): Promise<void> {
  await adminClient(app)
    .endpoint(`/api/v1/apps/${app.appId}/topics`)
    .post({ name, external_subscribable: true, auth_mode: "public", ...settings });
}

export async function publish(app: TestApp, topic: string, message: unknown): Promise<number> {
  const reply = await adminClient(app)
    .endpoint(`/api/v1/apps/${app.appId}/topics/${encodeURIComponent(topic)}/messages`)
    .post(
      { message },
      {
        validate: {
          parse(input: unknown): { id: number } {
            const id = (input as { id?: unknown } | null)?.id;
            if (typeof id !== "number") throw new TypeError("no id in publish reply");
            return { id };
          },
        },
      },
    );
  return reply.id;
}

/** Resolves when `predicate` holds, polling every 20 ms, or rejects after `ms`. */
export async function until(
  predicate: () => boolean,
  ms = 10_000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function mintToken(
  app: TestApp,
  topic: string,
  ttlSeconds: number,
): Promise<SubscriberToken> {
  return adminClient(app).mintToken({ appId: app.appId, topic, ttlSeconds });
}

/** Everything a subscription reported, with ways to wait for it. */
export interface Recorder<T> {
  messages: TopicMessage<T>[];
  statuses: SubscriptionStatus[];
  errors: unknown[];
  truncated: HistoryTruncated[];
  options: SubscribeOptions<T>;
  onMessage: (m: TopicMessage<T>) => void;
  ids(): string[];
  waitForMessages(n: number, ms?: number): Promise<void>;
  waitForStatus(predicate: (s: SubscriptionStatus) => boolean, ms?: number): Promise<void>;
}

export function recorder<T = unknown>(extra: SubscribeOptions<T> = {}): Recorder<T> {
  const rec: Recorder<T> = {
    messages: [],
    statuses: [],
    errors: [],
    truncated: [],
    options: {
      ...extra,
      onStatus: (s) => {
        rec.statuses.push(s);
        extra.onStatus?.(s);
      },
      onError: (e) => {
        rec.errors.push(e);
        extra.onError?.(e);
      },
      onHistoryTruncated: (info) => {
        rec.truncated.push(info);
        extra.onHistoryTruncated?.(info);
      },
    },
    onMessage: (m) => {
      rec.messages.push(m);
    },
    ids: () => rec.messages.map((m) => seq(m.id) ?? m.id),
    waitForMessages: (n, ms = 10_000) =>
      until(() => rec.messages.length >= n, ms, `${n} messages (have ${rec.messages.length})`),
    waitForStatus: (predicate, ms = 10_000) =>
      until(() => rec.statuses.some(predicate), ms, "a status"),
  };
  return rec;
}

/**
 * A `fetch` for realtime streams that the test can cut (like a dropped connection) and
 * hold back (a closed gate delays new connections until opened), recording each request.
 */
export function controlledFetch() {
  const requests: { url: string; headers: Record<string, string> }[] = [];
  const live = new Set<() => void>();
  let gate: Promise<void> | undefined;
  let openGate: (() => void) | undefined;
  const fetchImpl: FetchLike = async (input, init = {}) => {
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((value, key) => {
      headers[key] = value;
    });
    requests.push({ url: input, headers });
    if (gate) await gate;
    const response = await fetch(input, init);
    if (response.body === null) return response;
    const reader = response.body.getReader();
    let cutIt: (() => void) | undefined;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        cutIt = () => {
          try {
            controller.error(new TypeError("connection reset by test"));
          } catch {
            // already finished
          }
          reader.cancel().catch(() => undefined);
        };
        live.add(cutIt);
      },
      async pull(controller) {
        try {
          const { value, done } = await reader.read();
          if (done) {
            controller.close();
            if (cutIt) live.delete(cutIt);
          } else {
            controller.enqueue(value);
          }
        } catch (error) {
          try {
            controller.error(error);
          } catch {
            // already errored
          }
        }
      },
      cancel(reason) {
        if (cutIt) live.delete(cutIt);
        return reader.cancel(reason);
      },
    });
    return new Response(body, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
  return {
    fetch: fetchImpl,
    requests,
    /** Breaks every open stream. */
    cut: () => {
      for (const cutIt of [...live]) cutIt();
      live.clear();
    },
    hold: () => {
      gate = new Promise<void>((resolve) => {
        openGate = resolve;
      });
    },
    release: () => {
      gate = undefined;
      openGate?.();
    },
  };
}

/** The message number in an event id (a resume cursor, "v1.<epoch>.<number>"). */
export function seq(id: string | undefined): string | undefined {
  return id?.split(".").pop();
}
