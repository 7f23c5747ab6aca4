import { describe, expect, inject, it } from "vitest";
import { PiCloudError, createClient } from "../../src/index";
import type { TopicMessage } from "../../src/index";
import {
  adminClient,
  controlledFetch,
  createTopic,
  publish,
  recorder,
  uniqueTopic,
  until,
} from "./fixtures";

const app = inject("picloud");
const fastBackoff = { initialMs: 100, maxMs: 500 };

function byTopic(messages: TopicMessage<number>[]): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const m of messages) (out[m.topic] ??= []).push(m.message);
  return out;
}

describe("one stream of several topics", () => {
  it("keeps its one cursor across a cut stream: each topic resumes exactly", async () => {
    const [orders, lobby, room] = [uniqueTopic("orders"), uniqueTopic("lobby"), uniqueTopic("room")];
    const topics = [orders, lobby, room];
    await createTopic(app, orders, { auth_mode: "token" });
    await createTopic(app, lobby);
    await createTopic(app, room);
    const { token } = await adminClient(app).mintToken({ appId: app.appId, topics });
    const net = controlledFetch();
    const client = createClient({ baseUrl: app.url, fetch: net.fetch });
    const rec = recorder<number>({ backoff: fastBackoff, token });
    const stop = client.subscribe(topics, rec.onMessage, rec.options);
    try {
      await rec.waitForStatus((s) => s.state === "open");
      for (let n = 0; n < 6; n++) await publish(app, topics[n % 3] ?? orders, n);
      await rec.waitForMessages(6);

      net.hold(); // the reconnect waits until the missed messages are published
      net.cut();
      await rec.waitForStatus((s) => s.state === "reconnecting");
      await until(() => net.requests.length === 2, 5000, "the reconnect attempt");
      for (let n = 6; n < 12; n++) await publish(app, topics[n % 3] ?? orders, n);
      net.release();
      await rec.waitForMessages(12);
      await publish(app, lobby, 12);
      await rec.waitForMessages(13);

      expect(net.requests).toHaveLength(2);
      const cursor = rec.messages[5]?.id ?? "";
      expect(net.requests[1]?.headers["last-event-id"]).toBe(cursor);
      expect(cursor.startsWith("v2m.")).toBe(true);
      expect(byTopic(rec.messages)).toEqual({
        [orders]: [0, 3, 6, 9],
        [lobby]: [1, 4, 7, 10, 12],
        [room]: [2, 5, 8, 11],
      });
      // Only the cut itself (a TypeError from the test fetch) was reported.
      expect(rec.errors.filter((e) => !(e instanceof TypeError))).toEqual([]);
    } finally {
      stop();
    }
  });

  it("resumes from the opening cursor when the stream is cut before any message", async () => {
    const [a, b] = [uniqueTopic("a"), uniqueTopic("b")];
    const topics = [a, b];
    for (const t of topics) await createTopic(app, t);
    await publish(app, a, 100); // before the stream: not replayed
    const net = controlledFetch();
    const client = createClient({ baseUrl: app.url, fetch: net.fetch });
    const rec = recorder<number>({ backoff: fastBackoff });
    const stop = client.subscribe(topics, rec.onMessage, rec.options);
    try {
      await rec.waitForStatus((s) => s.state === "open");
      await new Promise((r) => setTimeout(r, 200)); // the opening cursor arrives
      net.hold();
      net.cut();
      await until(() => net.requests.length === 2, 5000, "the reconnect attempt");
      await publish(app, b, 1);
      await publish(app, a, 2);
      net.release();
      await rec.waitForMessages(2);
      expect(net.requests[1]?.headers["last-event-id"]?.startsWith("v2m.")).toBe(true);
      expect(byTopic(rec.messages)).toEqual({ [a]: [2], [b]: [1] });
    } finally {
      stop();
    }
  });

  it("is refused whole when one topic is not allowed, and cannot publish", async () => {
    const topics = [uniqueTopic("a"), uniqueTopic("b"), uniqueTopic("c")];
    for (const t of topics) await createTopic(app, t, { auth_mode: "token" });
    const { token } = await adminClient(app).mintToken({
      appId: app.appId,
      topics: topics.slice(0, 2),
    });
    const client = createClient({ baseUrl: app.url });
    const rec = recorder<number>({ token });
    const stop = client.subscribe(topics, rec.onMessage, rec.options);
    try {
      await rec.waitForStatus((s) => s.state === "closed");
      const closed = rec.statuses.at(-1);
      expect(closed?.state === "closed" && closed.error instanceof PiCloudError).toBe(true);
      expect(closed?.state === "closed" && (closed.error as PiCloudError).status).toBe(401);
      await expect(stop.publish(1)).rejects.toThrow(TypeError);
    } finally {
      stop();
    }
  });
});
