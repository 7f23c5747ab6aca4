import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../src/index";
import type { RunningServer } from "./server";
import { startServer } from "./server";
import type { TestApp } from "./fixtures";
import {
  adminClient,
  createTopic,
  publish,
  recorder,
  seq,
  setUpApp,
  uniqueTopic,
  until,
} from "./fixtures";

/** A server of this file's own that keeps messages for one second only. */
let server: RunningServer;
let app: TestApp;

beforeAll(async () => {
  server = await startServer({ env: { PICLOUD_REALTIME_RETENTION_SEC: "1" } });
  app = await setUpApp(server.url, server.adminKey);
});

afterAll(async () => {
  await server?.dispose();
});

async function retained(topic: string): Promise<number> {
  const history = await adminClient(app)
    .endpoint(`/api/v1/apps/${app.appId}/topics/${topic}/messages`)
    .get({
      query: { after: 0 },
      validate: {
        parse(input: unknown): { messages: unknown[] } {
          const messages = (input as { messages?: unknown } | null)?.messages;
          if (!Array.isArray(messages)) throw new TypeError("no messages list");
          return { messages };
        },
      },
    });
  return history.messages.length;
}

describe("a resume position older than the retained log", () => {
  it("is reported through onHistoryTruncated, and the stream goes on", async () => {
    const topic = uniqueTopic("pruned");
    await createTopic(app, topic);
    await publish(app, topic, 1);
    await publish(app, topic, 2);
    // Wait for the retention pruning to drop both.
    let left = 2;
    const poll = async (): Promise<void> => {
      while (left > 0) {
        left = await retained(topic);
        if (left > 0) await new Promise((r) => setTimeout(r, 200));
      }
    };
    await Promise.race([poll(), until(() => left === 0, 15_000, "pruning")]);

    const client = createClient({ baseUrl: app.url });
    const rec = recorder<number>({ lastEventId: "1" });
    const stop = client.subscribe(topic, rec.onMessage, rec.options);
    try {
      await until(() => rec.truncated.length === 1, 10_000, "history_truncated");
      expect(rec.truncated[0]).toEqual({ requested: 1, oldest: 3 });
      await rec.waitForStatus((s) => s.state === "open");
      await publish(app, topic, 3);
      await rec.waitForMessages(1);
      expect(rec.messages.map((m) => [seq(m.id), m.message])).toEqual([["3", 3]]);
    } finally {
      stop();
    }
  });
});
