import { get } from "svelte/store";
import { describe, expect, it } from "vitest";
import { createClient } from "../../src/index";
import { subscriptionStore } from "../../src/svelte/index";
import type { SubscriptionState } from "../../src/svelte/index";
import { flush, scriptedFetch, sseStream } from "../support/fake-fetch";

function frame(id: number, message: unknown): string {
  return `id: ${id}\ndata: ${JSON.stringify({ topic: "room", message, published_at: "t" })}\n\n`;
}

describe("subscriptionStore", () => {
  it("connects on the first subscriber, delivers messages, ends with the last one", async () => {
    const stream = sseStream();
    const net = scriptedFetch([stream]);
    const client = createClient({ baseUrl: "http://a.localhost", fetch: net.fetch });
    const store = subscriptionStore<number>(client, "room", { keep: 2 });
    await flush();
    expect(net.calls).toHaveLength(0); // lazy
    const seen: SubscriptionState<number>[] = [];
    const stopA = store.subscribe((s) => seen.push(s));
    const stopB = store.subscribe(() => undefined);
    await flush();
    expect(net.calls).toHaveLength(1);
    stream.push(frame(1, 10) + frame(2, 20) + frame(3, 30));
    await flush();
    const state = get(store);
    expect(state.messages.map((m) => m.message)).toEqual([20, 30]);
    expect(state.last?.id).toBe("3");
    expect(state.status).toEqual({ state: "open" });
    expect(seen.map((s) => s.last?.message)).toContain(10);
    stopA();
    await flush();
    expect(net.calls[0]?.signal?.aborted).toBe(false);
    stopB();
    await flush();
    expect(net.calls[0]?.signal?.aborted).toBe(true);
  });

  it("follows a list of topics on one stream; a reset drops only that topic's messages", async () => {
    const stream = sseStream();
    const net = scriptedFetch([stream]);
    const client = createClient({ baseUrl: "http://a.localhost", fetch: net.fetch });
    const store = subscriptionStore<string>(client, ["room", "lobby"]);
    const stop = store.subscribe(() => undefined);
    await flush();
    const on = (topic: string, id: string, message: string): string =>
      `id: ${id}\ndata: ${JSON.stringify({ topic, message, published_at: "t" })}\n\n`;
    stream.push(on("room", "v2m.c1", "r1") + on("lobby", "v2m.c2", "l1"));
    await flush();
    expect(net.calls.map((c) => c.url)).toEqual(["http://a.localhost/realtime?topic=room&topic=lobby"]);
    expect(get(store).messages.map((m) => [m.topic, m.message])).toEqual([
      ["room", "r1"],
      ["lobby", "l1"],
    ]);
    stream.push('id: v2m.c3\nevent: reset\ndata: {"topic":"room","epoch":2,"oldest":null}\n\n');
    await flush();
    expect(get(store).messages.map((m) => m.message)).toEqual(["l1"]);
    expect(get(store).last?.message).toBe("l1");
    stop();
  });

  it("reports history_truncated and passes options through", async () => {
    const stream = sseStream();
    const net = scriptedFetch([stream]);
    const client = createClient({ baseUrl: "http://a.localhost", fetch: net.fetch });
    const store = subscriptionStore(client, "room", { token: "tk", lastEventId: "1" });
    const stop = store.subscribe(() => undefined);
    await flush();
    expect(net.calls[0]?.headers.authorization).toBe("Bearer tk");
    expect(net.calls[0]?.headers["last-event-id"]).toBe("1");
    stream.push('event: history_truncated\ndata: {"requested":1,"oldest":4}\n\n');
    await flush();
    expect(get(store).historyTruncated).toEqual({ requested: 1, oldest: 4 });
    stop();
  });

  it("drops the previous incarnation's messages on a reset", async () => {
    const stream = sseStream();
    const net = scriptedFetch([stream]);
    const client = createClient({ baseUrl: "http://a.localhost", fetch: net.fetch });
    const store = subscriptionStore<number>(client, "room");
    const stop = store.subscribe(() => undefined);
    await flush();
    stream.push(frame(4, 40) + frame(5, 50));
    await flush();
    stream.push('id: v1.2.0\nevent: reset\ndata: {"topic":"room","epoch":2,"oldest":1}\n\n');
    await flush();
    expect(get(store).reset).toEqual({ topic: "room", epoch: 2, oldest: 1 });
    expect(get(store).messages).toEqual([]);
    stream.push(frame(1, 10));
    await flush();
    expect(get(store).messages.map((m) => m.message)).toEqual([10]);
    stop();
  });

  it("resumes after its last message when it gets a subscriber again", async () => {
    const first = sseStream();
    const second = sseStream();
    const net = scriptedFetch([first, second]);
    const client = createClient({ baseUrl: "http://a.localhost", fetch: net.fetch });
    const store = subscriptionStore<number>(client, "room");
    const stop = store.subscribe(() => undefined);
    await flush();
    first.push(frame(1, 10) + frame(2, 20));
    await flush();
    stop();
    const again = store.subscribe(() => undefined);
    await flush();
    expect(net.calls).toHaveLength(2);
    expect(net.calls[1]?.headers["last-event-id"]).toBe("2");
    second.push(frame(3, 30));
    await flush();
    expect(get(store).messages.map((m) => m.message)).toEqual([10, 20, 30]);
    again();
  });
});
