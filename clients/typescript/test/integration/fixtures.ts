/** Helpers for integration tests: an app, topics, publishing and tokens over the real API. */

import { randomBytes } from "node:crypto";
import { createClient } from "../../src/index";
import type { PiCloudClient } from "../../src/index";

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
    if (typeof row?.id !== "string" || typeof row.slug !== "string") throw new TypeError("not an app");
    return { id: row.id, slug: row.slug };
  },
};

/** Creates an app and makes `127.0.0.1` its domain, so `url` routes realtime to it. */
export async function setUpApp(url: string, adminKey: string): Promise<TestApp> {
  const admin = createClient({ baseUrl: url, apiKey: adminKey });
  const slug = `it-${randomBytes(4).toString("hex")}`;
  const app = await admin.endpoint("/api/v1/apps").post({ slug, name: "client integration tests" }, { validate: appValidator });
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

export async function createTopic(app: TestApp, name: string, settings: TopicSettings = {}): Promise<void> {
  await adminClient(app)
    .endpoint(`/api/v1/apps/${app.appId}/topics`)
    .post({ name, external_subscribable: true, auth_mode: "public", ...settings });
}

export async function publish(app: TestApp, topic: string, message: unknown): Promise<number> {
  const reply = await adminClient(app)
    .endpoint(`/api/v1/apps/${app.appId}/topics/${encodeURIComponent(topic)}/messages`)
    .post({ message }, {
      validate: {
        parse(input: unknown): { id: number } {
          const id = (input as { id?: unknown } | null)?.id;
          if (typeof id !== "number") throw new TypeError("no id in publish reply");
          return { id };
        },
      },
    });
  return reply.id;
}

/** Resolves when `predicate` holds, polling every 20 ms, or rejects after `ms`. */
export async function until(predicate: () => boolean, ms = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
