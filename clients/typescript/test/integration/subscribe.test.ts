import { describe, expect, inject, it, vi } from "vitest";
import { PiCloudError, createClient, tokenCache } from "../../src/index";
import {
  adminClient,
  controlledFetch,
  createTopic,
  mintToken,
  publish,
  recorder,
  seq,
  uniqueTopic,
  until,
} from "./fixtures";

const app = inject("picloud");
const fastBackoff = { initialMs: 100, maxMs: 500 };

describe("subscribe against a running PiCloud", () => {
  it("receives replayed and live messages, in order, once each", async () => {
    const topic = uniqueTopic("live");
    await createTopic(app, topic);
    expect(await publish(app, topic, { n: 1 })).toBe(1);
    const client = createClient({ baseUrl: app.url });
    const rec = recorder<{ n: number }>({ lastEventId: "0" });
    const stop = client.subscribe(topic, rec.onMessage, rec.options);
    try {
      await rec.waitForStatus((s) => s.state === "open");
      await rec.waitForMessages(1);
      await publish(app, topic, { n: 2 });
      await publish(app, topic, { n: 3 });
      await rec.waitForMessages(3);
      expect(rec.messages.map((m) => [seq(m.id), m.topic, m.message])).toEqual([
        ["1", topic, { n: 1 }],
        ["2", topic, { n: 2 }],
        ["3", topic, { n: 3 }],
      ]);
      for (const m of rec.messages) expect(Number.isNaN(Date.parse(m.published_at))).toBe(false);
      expect(rec.errors).toEqual([]);
    } finally {
      stop();
    }
    expect(rec.statuses.at(-1)).toEqual({ state: "closed" });
  });

  it("resumes with Last-Event-ID after the stream is cut: nothing lost, nothing repeated", async () => {
    const topic = uniqueTopic("resume");
    await createTopic(app, topic);
    const net = controlledFetch();
    const client = createClient({ baseUrl: app.url, fetch: net.fetch });
    const rec = recorder<number>({ backoff: fastBackoff });
    const stop = client.subscribe(topic, rec.onMessage, rec.options);
    try {
      await rec.waitForStatus((s) => s.state === "open");
      for (const n of [1, 2, 3]) await publish(app, topic, n);
      await rec.waitForMessages(3);

      net.hold(); // the reconnect waits until the missed messages are published
      net.cut();
      await rec.waitForStatus((s) => s.state === "reconnecting");
      await until(() => net.requests.length === 2, 5000, "the reconnect attempt");
      for (const n of [4, 5, 6]) await publish(app, topic, n);
      net.release();

      await rec.waitForMessages(6);
      await publish(app, topic, 7);
      await rec.waitForMessages(7);
      expect(seq(net.requests[1]?.headers["last-event-id"])).toBe("3");
      expect(rec.messages.map((m) => m.message)).toEqual([1, 2, 3, 4, 5, 6, 7]);
      expect(rec.ids()).toEqual(["1", "2", "3", "4", "5", "6", "7"]);
    } finally {
      stop();
    }
  });

  it("on 401 with an expired token calls onTokenExpired and reconnects with the new one", async () => {
    const topic = uniqueTopic("secret");
    await createTopic(app, topic, { auth_mode: "token" });
    const expired = await mintToken(app, topic, 1);
    await until(() => Date.now() > Date.parse(expired.expires_at) + 50, 5000, "token expiry");
    const net = controlledFetch();
    const client = createClient({ baseUrl: app.url, fetch: net.fetch });
    const onTokenExpired = vi.fn(async () => (await mintToken(app, topic, 60)).token);
    const rec = recorder<string>({ token: expired.token, onTokenExpired });
    const stop = client.subscribe(topic, rec.onMessage, rec.options);
    try {
      await rec.waitForStatus((s) => s.state === "open");
      await publish(app, topic, "after refresh");
      await rec.waitForMessages(1);
      expect(onTokenExpired).toHaveBeenCalledTimes(1);
      expect(rec.errors[0]).toBeInstanceOf(PiCloudError);
      expect((rec.errors[0] as PiCloudError).status).toBe(401);
      expect(net.requests.map((r) => r.headers.authorization)).toEqual([
        `Bearer ${expired.token}`,
        `Bearer ${(await onTokenExpired.mock.results[0]?.value) as string}`,
      ]);
      expect(rec.messages.map((m) => m.message)).toEqual(["after refresh"]);
    } finally {
      stop();
    }
  });

  it("with getToken fetches a fresh token before reconnecting once the old one expired", async () => {
    const topic = uniqueTopic("rotating");
    await createTopic(app, topic, { auth_mode: "token" });
    const load = vi.fn(() => mintToken(app, topic, 1));
    const tokens = tokenCache(load, { refreshBeforeMs: 0 });
    const net = controlledFetch();
    const client = createClient({ baseUrl: app.url, fetch: net.fetch });
    const rec = recorder<number>({
      getToken: tokens.get,
      onTokenExpired: tokens.invalidate,
      backoff: fastBackoff,
    });
    const stop = client.subscribe(topic, rec.onMessage, rec.options);
    try {
      await rec.waitForStatus((s) => s.state === "open");
      await publish(app, topic, 1);
      await rec.waitForMessages(1);
      const first = await load.mock.results[0]?.value;
      await until(() => Date.now() > Date.parse(first.expires_at) + 50, 5000, "token expiry");
      net.cut();
      await publish(app, topic, 2);
      await rec.waitForMessages(2);
      expect(load).toHaveBeenCalledTimes(2);
      expect(rec.messages.map((m) => m.message)).toEqual([1, 2]);
      expect(net.requests).toHaveLength(2);
      expect(net.requests[1]?.headers.authorization).not.toBe(
        net.requests[0]?.headers.authorization,
      );
      expect(seq(net.requests[1]?.headers["last-event-id"])).toBe("1");
    } finally {
      stop();
    }
  });

  it("closes with a 401 PiCloudError for a token of another topic when it cannot refresh", async () => {
    const topic = uniqueTopic("guarded");
    const other = uniqueTopic("other");
    await createTopic(app, topic, { auth_mode: "token" });
    await createTopic(app, other, { auth_mode: "token" });
    const wrong = await mintToken(app, other, 60);
    const client = createClient({ baseUrl: app.url });
    const rec = recorder({ token: wrong.token });
    client.subscribe(topic, rec.onMessage, rec.options);
    await rec.waitForStatus((s) => s.state === "closed");
    const closed = rec.statuses.at(-1);
    expect(closed?.state === "closed" && closed.error).toBeInstanceOf(PiCloudError);
    expect(closed?.state === "closed" && (closed.error as PiCloudError).status).toBe(401);
  });

  it("closes with 404 for a topic that does not exist or is not external", async () => {
    const internal = uniqueTopic("internal");
    await createTopic(app, internal, { external_subscribable: false });
    const client = createClient({ baseUrl: app.url });
    for (const topic of [uniqueTopic("missing"), internal]) {
      const rec = recorder();
      client.subscribe(topic, rec.onMessage, rec.options);
      await rec.waitForStatus((s) => s.state === "closed");
      const closed = rec.statuses.at(-1);
      expect(closed?.state === "closed" && (closed.error as PiCloudError).status).toBe(404);
    }
  });

  it("ends with 404 when the topic is deleted under it", async () => {
    const topic = uniqueTopic("doomed");
    await createTopic(app, topic);
    const client = createClient({ baseUrl: app.url });
    const rec = recorder({ backoff: fastBackoff });
    client.subscribe(topic, rec.onMessage, rec.options);
    await rec.waitForStatus((s) => s.state === "open");
    await adminClient(app).endpoint(`/api/v1/apps/${app.appId}/topics/${topic}`).delete();
    await rec.waitForStatus((s) => s.state === "closed");
    const closed = rec.statuses.at(-1);
    expect(closed?.state === "closed" && (closed.error as PiCloudError).status).toBe(404);
    expect(rec.statuses.map((s) => s.state)).toEqual([
      "connecting",
      "open",
      "reconnecting",
      "connecting",
      "closed",
    ]);
  });

  it("stops on AbortSignal while streaming", async () => {
    const topic = uniqueTopic("abort");
    await createTopic(app, topic);
    const client = createClient({ baseUrl: app.url });
    const controller = new AbortController();
    const rec = recorder({ signal: controller.signal });
    client.subscribe(topic, rec.onMessage, rec.options);
    await rec.waitForStatus((s) => s.state === "open");
    controller.abort();
    expect(rec.statuses.at(-1)).toEqual({ state: "closed" });
    // A second subscriber shows when the message has been delivered.
    const witness = recorder();
    const stopWitness = client.subscribe(topic, witness.onMessage, witness.options);
    await witness.waitForStatus((s) => s.state === "open");
    await publish(app, topic, "unseen");
    await witness.waitForMessages(1);
    stopWitness();
    expect(rec.messages).toEqual([]);
  });
});
