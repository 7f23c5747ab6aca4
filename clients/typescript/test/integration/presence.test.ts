import { describe, expect, inject, it } from "vitest";
import { createClient, withPresence } from "../../src/index";
import type { PresenceEvent, PresenceMap } from "../../src/index";
import { adminClient, createTopic, publish, recorder, uniqueTopic, until } from "./fixtures";

const app = inject("picloud");
const fastBackoff = { initialMs: 100, maxMs: 500 };

async function presenceTopic(name: string, authMode: "public" | "token" = "token"): Promise<void> {
  await createTopic(app, name, { auth_mode: authMode });
  await adminClient(app)
    .endpoint(`/api/v1/apps/${app.appId}/topics/${encodeURIComponent(name)}`)
    .patch({ presence: true });
  // Changing the flag ends the topic's streams when the relay hears of it: let it.
  await new Promise((r) => setTimeout(r, 500));
}

async function tokenFor(topics: string[], subject: string, info?: Record<string, unknown>) {
  const { token } = await adminClient(app).mintToken({
    appId: app.appId,
    topics,
    subject,
    ...(info ? { info } : {}),
  });
  return token;
}

/** A subscription that records its presence events and keeps the set they describe. */
function watch(topics: string | string[], token: string) {
  const events: PresenceEvent[] = [];
  let present: PresenceMap = {};
  const rec = recorder<unknown>({
    backoff: fastBackoff,
    token,
    onPresence: (e) => {
      events.push(e);
      present = withPresence(present, e);
    },
  });
  const stop = createClient({ baseUrl: app.url }).subscribe(topics, rec.onMessage, rec.options);
  return {
    rec,
    events,
    stop,
    present: (topic: string) => Object.keys(present[topic] ?? {}).sort(),
    waitEvents: (n: number) => until(() => events.length >= n, 10_000, `${n} presence events`),
  };
}

describe("presence", () => {
  it("one join per subject over tabs, one leave after the last, info from the token", async () => {
    const room = uniqueTopic("room");
    await presenceTopic(room);
    const ada = await tokenFor([room], "ada", { name: "Ada" });
    const bob = watch(room, await tokenFor([room], "bob"));
    try {
      await bob.waitEvents(1);
      expect(bob.events).toEqual([{ topic: room, event: "joined", subject: "bob", info: null }]);
      const tab1 = watch(room, ada);
      await bob.waitEvents(2);
      expect(bob.events[1]).toEqual({
        topic: room,
        event: "joined",
        subject: "ada",
        info: { name: "Ada" },
      });
      await tab1.waitEvents(2); // told who was already here, and its own join
      expect(tab1.present(room)).toEqual(["ada", "bob"]);
      const tab2 = watch(room, ada);
      await tab2.waitEvents(2);
      expect(tab2.present(room)).toEqual(["ada", "bob"]);
      await new Promise((r) => setTimeout(r, 700));
      expect(bob.events).toHaveLength(2); // the second tab is not a second join
      tab1.stop();
      await new Promise((r) => setTimeout(r, 700));
      expect(bob.events).toHaveLength(2); // ada is still here in the other tab
      tab2.stop();
      await bob.waitEvents(3);
      expect(bob.events[2]).toMatchObject({ event: "left", subject: "ada" });
      expect(bob.present(room)).toEqual(["bob"]);
      await new Promise((r) => setTimeout(r, 500));
      expect(bob.events).toHaveLength(3);
    } finally {
      bob.stop();
    }
  });

  it("a multiplexed stream carries a token topic, a public one and a presence one", async () => {
    const [orders, lobby, room] = [uniqueTopic("orders"), uniqueTopic("lobby"), uniqueTopic("room")];
    await createTopic(app, orders, { auth_mode: "token" });
    await createTopic(app, lobby);
    await presenceTopic(room, "public");
    const topics = [orders, lobby, room];
    const me = watch(topics, await tokenFor(topics, "carol", { role: "buyer" }));
    try {
      await me.waitEvents(1);
      expect(me.events[0]).toEqual({
        topic: room,
        event: "joined",
        subject: "carol",
        info: { role: "buyer" },
      });
      for (const [i, t] of topics.entries()) await publish(app, t, i);
      await me.rec.waitForMessages(3);
      expect(me.rec.messages.map((m) => [m.topic, m.message]).sort()).toEqual(
        [
          [orders, 0],
          [lobby, 1],
          [room, 2],
        ].sort(),
      );
      // Presence frames leave the stream's cursor alone: every message id is a v2m cursor.
      expect(me.rec.messages.every((m) => m.id.startsWith("v2m."))).toBe(true);
      expect(me.rec.errors).toEqual([]);
    } finally {
      me.stop();
    }
  });
});
