import { describe, expect, inject, it } from "vitest";
import { PiCloudError, createClient } from "../../src/index";
import { adminClient, createTopic, recorder, seq, uniqueTopic } from "./fixtures";

const app = inject("picloud");

describe("publish with a subscriber token against a running PiCloud", () => {
  it("publishes from a subscription with its token; the frame says who", async () => {
    const topic = uniqueTopic("chat");
    await createTopic(app, topic, { auth_mode: "token" });
    const { token } = await adminClient(app).mintToken({
      appId: app.appId,
      topic,
      publish: true,
      subject: "ada",
    });
    const client = createClient({ baseUrl: app.url });
    const rec = recorder<{ text: string }>({ token });
    const sub = client.subscribe(topic, rec.onMessage, rec.options);
    try {
      await rec.waitForStatus((s) => s.state === "open");
      const published = await sub.publish({ text: "hello" });
      expect(published.id).toBe(1);
      expect(Number.isNaN(Date.parse(published.published_at))).toBe(false);
      await client.publish(topic, { text: "again" }, { token });
      await rec.waitForMessages(2);
      expect(rec.messages.map((m) => [seq(m.id), m.message.text, m.from])).toEqual([
        ["1", "hello", "ada"],
        ["2", "again", "ada"],
      ]);
      expect(rec.messages[0]?.published_at).toBe(published.published_at);
    } finally {
      sub();
    }
  });

  it("rejects with PiCloudError: 401 without the grant, 404 for a missing topic", async () => {
    const topic = uniqueTopic("quiet");
    await createTopic(app, topic, { auth_mode: "token" });
    const reader = await adminClient(app).mintToken({ appId: app.appId, topic });
    const client = createClient({ baseUrl: app.url });
    const refused = await client
      .publish(topic, "x", { token: reader.token })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(PiCloudError);
    expect((refused as PiCloudError).status).toBe(401);
    const missing = await client
      .publish(uniqueTopic("none"), "x", { token: reader.token })
      .catch((e: unknown) => e);
    expect((missing as PiCloudError).status).toBe(404);
  });

  it("reports the rate limit's Retry-After", async () => {
    const topic = uniqueTopic("fast");
    await createTopic(app, topic);
    const { token } = await adminClient(app).mintToken({
      appId: app.appId,
      topic,
      publish: true,
      subject: "fast",
    });
    const client = createClient({ baseUrl: app.url });
    let limited: unknown;
    for (let i = 0; i < 200 && limited === undefined; i++) {
      await client.publish(topic, i, { token }).catch((e: unknown) => {
        limited = e;
      });
    }
    expect(limited).toBeInstanceOf(PiCloudError);
    expect((limited as PiCloudError).status).toBe(429);
    expect((limited as PiCloudError).code).toBe("rate_limited");
    expect((limited as PiCloudError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
  });
});
