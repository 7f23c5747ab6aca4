import { get } from "svelte/store";
import { describe, expect, inject, it } from "vitest";
import { createClient } from "../../src/index";
import { subscriptionStore } from "../../src/svelte/index";
import { createTopic, publish, seq, uniqueTopic, until } from "./fixtures";

const app = inject("picloud");

describe("subscriptionStore against a running PiCloud", () => {
  it("delivers published messages to its subscribers and ends with the last one", async () => {
    const topic = uniqueTopic("svelte");
    await createTopic(app, topic);
    const client = createClient({ baseUrl: app.url });
    const store = subscriptionStore<string>(client, topic);
    const values: string[][] = [];
    const unsubscribe = store.subscribe((s) => values.push(s.messages.map((m) => m.message)));
    try {
      await until(() => get(store).status.state === "open", 10_000, "open");
      await publish(app, topic, "one");
      await publish(app, topic, "two");
      await until(() => get(store).messages.length === 2, 10_000, "two messages");
      expect(get(store).messages.map((m) => [seq(m.id), m.message])).toEqual([
        ["1", "one"],
        ["2", "two"],
      ]);
      expect(values.at(-1)).toEqual(["one", "two"]);
    } finally {
      unsubscribe();
    }
  });
});
