import { describe, expect, inject, it } from "vitest";
import { createClient } from "../../src/index";
import type { TopicReset } from "../../src/index";
import { adminClient, createTopic, publish, recorder, seq, uniqueTopic, until } from "./fixtures";

const app = inject("picloud");

describe("a topic deleted and created again", () => {
  it("is reported through onReset on reconnect, and the new messages follow", async () => {
    const topic = uniqueTopic("again");
    await createTopic(app, topic);
    const resets: TopicReset[] = [];
    const client = createClient({ baseUrl: app.url });
    const rec = recorder<string>({
      backoff: { initialMs: 100, maxMs: 200 },
      onReset: (info) => resets.push(info),
    });
    const stop = client.subscribe(topic, rec.onMessage, rec.options);
    try {
      await rec.waitForStatus((s) => s.state === "open");
      for (const m of ["1", "2", "3"]) await publish(app, topic, m);
      await rec.waitForMessages(3);
      const before = rec.messages.length;
      // Delete and create again while the subscription runs: its stream ends, and it
      // resumes with a cursor of the old incarnation.
      await adminClient(app)
        .endpoint(`/api/v1/apps/${app.appId}/topics/${encodeURIComponent(topic)}`)
        .delete();
      await createTopic(app, topic);
      expect(await publish(app, topic, "new")).toBe(1);
      await until(() => resets.length === 1, 10_000, "a reset");
      // (oldest is null when the client came back before the first new publish.)
      expect(resets[0]?.topic).toBe(topic);
      expect([1, null]).toContain(resets[0]?.oldest);
      await rec.waitForMessages(before + 1);
      expect(rec.messages.slice(before).map((m) => [seq(m.id), m.message])).toEqual([
        ["1", "new"],
      ]);
    } finally {
      stop();
    }
  });
});
