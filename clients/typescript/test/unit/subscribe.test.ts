import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { PiCloudError, createClient } from "../../src/index";
import type { SubscriptionStatus, TopicMessage } from "../../src/index";
import { flush, jsonResponse, scriptedFetch, sseStream } from "../support/fake-fetch";

const BASE = "http://chat.localhost:8080";

function frame(id: number, message: unknown, topic = "room"): string {
  return `id: ${id}\ndata: ${JSON.stringify({ topic, message, published_at: "2026-01-01T00:00:00Z" })}\n\n`;
}

function unauthorized(): Response {
  return jsonResponse(401, { error: { code: "unauthorized", message: "unauthorized" } });
}

/** Advances fake time step by step so that async work between timers runs. */
async function advance(ms: number): Promise<void> {
  await vi.advanceTimersByTimeAsync(ms);
}

// Fake timers throughout; no jitter, so delays are exact.
beforeEach(() => {
  vi.useFakeTimers();
  vi.spyOn(Math, "random").mockReturnValue(0);
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("subscribe", () => {
  it("streams messages from /realtime/topics/{topic} with the token as Bearer", async () => {
    const stream = sseStream();
    const net = scriptedFetch([stream]);
    const client = createClient({ baseUrl: `${BASE}/`, fetch: net.fetch });
    const got: TopicMessage[] = [];
    const statuses: SubscriptionStatus[] = [];
    const stop = client.subscribe("room:1", (m) => got.push(m), {
      token: "tok-1",
      onStatus: (s) => statuses.push(s),
    });
    await flush();
    stream.push(":heartbeat\n\n");
    stream.push(frame(1, { text: "hi" }, "room:1").slice(0, 20));
    stream.push(frame(1, { text: "hi" }, "room:1").slice(20) + frame(2, [1, 2], "room:1"));
    await flush();
    expect(net.calls).toHaveLength(1);
    expect(net.calls[0]?.url).toBe(`${BASE}/realtime/topics/room%3A1`);
    expect(net.calls[0]?.headers.authorization).toBe("Bearer tok-1");
    expect(net.calls[0]?.headers.accept).toBe("text/event-stream");
    expect(net.calls[0]?.headers["last-event-id"]).toBeUndefined();
    expect(got).toEqual([
      { id: "1", topic: "room:1", message: { text: "hi" }, published_at: "2026-01-01T00:00:00Z" },
      { id: "2", topic: "room:1", message: [1, 2], published_at: "2026-01-01T00:00:00Z" },
    ]);
    expect(statuses).toEqual([{ state: "connecting", attempt: 1 }, { state: "open" }]);
    stop();
    await flush();
    expect(stream.cancelled).toBe(true);
    expect(statuses.at(-1)).toEqual({ state: "closed" });
  });

  it("sends Last-Event-ID when it resumes after the stream ends, and no token when none", async () => {
    const first = sseStream();
    const second = sseStream();
    const net = scriptedFetch([first, second]);
    const client = createClient({ baseUrl: BASE, fetch: net.fetch });
    const ids: string[] = [];
    client.subscribe("room", (m) => ids.push(m.id), { lastEventId: "4" });
    await flush();
    expect(net.calls[0]?.headers["last-event-id"]).toBe("4");
    expect(net.calls[0]?.headers.authorization).toBeUndefined();
    first.push(frame(5, "a") + frame(6, "b"));
    first.end();
    await flush();
    expect(net.calls).toHaveLength(1);
    await advance(1000);
    expect(net.calls).toHaveLength(2);
    expect(net.calls[1]?.headers["last-event-id"]).toBe("6");
    second.push(frame(7, "c"));
    await flush();
    expect(ids).toEqual(["5", "6", "7"]);
  });

  it("resumes from the last id after a broken connection too", async () => {
    const first = sseStream();
    const net = scriptedFetch([first, sseStream()]);
    const client = createClient({ baseUrl: BASE, fetch: net.fetch });
    client.subscribe("room", () => undefined);
    await flush();
    first.push(frame(41, "x") + 'id: 42\ndata: {"topic":"room","message":1');
    first.fail();
    await advance(1000);
    expect(net.calls).toHaveLength(2);
    // The half-received event 42 was never delivered, so it is asked for again.
    expect(net.calls[1]?.headers["last-event-id"]).toBe("41");
  });

  it("counts an event with an id but no data as received", async () => {
    const first = sseStream();
    const net = scriptedFetch([first, sseStream()]);
    const client = createClient({ baseUrl: BASE, fetch: net.fetch });
    client.subscribe("room", () => undefined);
    await flush();
    first.push(frame(1, "x") + "id: 9\n\n");
    first.fail();
    await advance(1000);
    expect(net.calls[1]?.headers["last-event-id"]).toBe("9");
  });

  it("on 401 calls onTokenExpired and reconnects at once with the new token", async () => {
    const stream = sseStream();
    const net = scriptedFetch([unauthorized(), stream]);
    const client = createClient({ baseUrl: BASE, fetch: net.fetch });
    const onTokenExpired = vi.fn(async () => "fresh");
    const got: unknown[] = [];
    client.subscribe("room", (m) => got.push(m.message), { token: "stale", onTokenExpired });
    await flush(30);
    expect(onTokenExpired).toHaveBeenCalledTimes(1);
    expect(net.calls.map((c) => c.headers.authorization)).toEqual(["Bearer stale", "Bearer fresh"]);
    expect(net.calls[1]?.at).toBe(net.calls[0]?.at);
    stream.push(frame(1, "ok"));
    await flush();
    expect(got).toEqual(["ok"]);
  });

  it("fetches a fresh token with getToken before every connection", async () => {
    const first = sseStream();
    const net = scriptedFetch([first, unauthorized(), sseStream()]);
    const client = createClient({ baseUrl: BASE, fetch: net.fetch });
    let n = 0;
    const getToken = vi.fn(async () => `t${++n}`);
    const onTokenExpired = vi.fn();
    client.subscribe("room", () => undefined, { getToken, onTokenExpired });
    await flush();
    first.end();
    await advance(1000);
    await flush(30);
    expect(net.calls.map((c) => c.headers.authorization)).toEqual([
      "Bearer t1",
      "Bearer t2",
      "Bearer t3",
    ]);
    expect(onTokenExpired).toHaveBeenCalledTimes(1);
  });

  it("backs off when the fresh token is refused again", async () => {
    const net = scriptedFetch([unauthorized(), unauthorized(), unauthorized(), sseStream()]);
    const client = createClient({ baseUrl: BASE, fetch: net.fetch });
    client.subscribe("room", () => undefined, { onTokenExpired: () => "again" });
    await flush(30);
    expect(net.calls).toHaveLength(2);
    await advance(999);
    expect(net.calls).toHaveLength(2);
    await advance(1);
    expect(net.calls).toHaveLength(3);
    await advance(2000);
    expect(net.calls).toHaveLength(4);
  });

  it("closes with the error on 401 when it cannot get a new token", async () => {
    const net = scriptedFetch([unauthorized()]);
    const client = createClient({ baseUrl: BASE, fetch: net.fetch });
    const statuses: SubscriptionStatus[] = [];
    client.subscribe("room", () => undefined, { token: "x", onStatus: (s) => statuses.push(s) });
    await flush(30);
    const last = statuses.at(-1);
    expect(last?.state).toBe("closed");
    expect(last?.state === "closed" && last.error).toBeInstanceOf(PiCloudError);
    expect(last?.state === "closed" && (last.error as PiCloudError).code).toBe("unauthorized");
    await advance(60_000);
    expect(net.calls).toHaveLength(1);
  });

  it("stops on 404 (unknown topic) without retrying", async () => {
    const net = scriptedFetch([
      jsonResponse(404, { error: { code: "not_found", message: "no such topic" } }),
    ]);
    const client = createClient({ baseUrl: BASE, fetch: net.fetch });
    const statuses: SubscriptionStatus[] = [];
    client.subscribe("nope", () => undefined, { onStatus: (s) => statuses.push(s) });
    await flush(30);
    await advance(60_000);
    expect(net.calls).toHaveLength(1);
    const last = statuses.at(-1);
    expect(last?.state === "closed" && (last.error as PiCloudError).status).toBe(404);
  });

  it("tells the caller about history_truncated and goes on with the retained messages", async () => {
    const stream = sseStream();
    const net = scriptedFetch([stream]);
    const client = createClient({ baseUrl: BASE, fetch: net.fetch });
    const truncated = vi.fn();
    const ids: string[] = [];
    client.subscribe("room", (m) => ids.push(m.id), {
      lastEventId: "2",
      onHistoryTruncated: truncated,
    });
    await flush();
    stream.push(
      'event: history_truncated\ndata: {"requested": 2, "oldest": 10}\n\n' + frame(10, "r"),
    );
    await flush();
    expect(truncated).toHaveBeenCalledWith({ requested: 2, oldest: 10 });
    expect(ids).toEqual(["10"]);
  });

  it("tells the caller about a reset, then delivers the new incarnation and resumes after it", async () => {
    const first = sseStream();
    const second = sseStream();
    const net = scriptedFetch([first, second]);
    const client = createClient({ baseUrl: BASE, fetch: net.fetch });
    const reset = vi.fn();
    const truncated = vi.fn();
    const ids: string[] = [];
    client.subscribe("room", (m) => ids.push(m.id), {
      lastEventId: "v1.7.5",
      onReset: reset,
      onHistoryTruncated: truncated,
      backoff: { initialMs: 10, jitter: 0 },
    });
    await flush();
    expect(net.calls[0]?.headers["last-event-id"]).toBe("v1.7.5");
    first.push(
      'id: v1.9.0\nevent: reset\ndata: {"topic":"room","epoch":9,"oldest":1}\n\n' +
        'id: v1.9.1\ndata: {"topic":"room","message":"a","published_at":"t"}\n\n',
    );
    await flush();
    expect(reset).toHaveBeenCalledWith({ topic: "room", epoch: 9, oldest: 1 });
    expect(truncated).not.toHaveBeenCalled();
    expect(ids).toEqual(["v1.9.1"]);
    first.end();
    await flush(30);
    await advance(50);
    expect(net.calls).toHaveLength(2);
    expect(net.calls[1]?.headers["last-event-id"]).toBe("v1.9.1");
  });

  it("validates payloads: a bad one goes to onError and is skipped, the id still advances", async () => {
    const first = sseStream();
    const net = scriptedFetch([first, sseStream()]);
    const client = createClient({ baseUrl: BASE, fetch: net.fetch });
    const validate = {
      parse(input: unknown): { n: number } {
        if (
          typeof input === "object" &&
          input !== null &&
          typeof (input as { n?: unknown }).n === "number"
        ) {
          return { n: (input as { n: number }).n };
        }
        throw new TypeError("bad message");
      },
    };
    const got: number[] = [];
    const errors: unknown[] = [];
    client.subscribe("room", (m) => got.push(m.message.n), {
      validate,
      onError: (e) => errors.push(e),
    });
    await flush();
    first.push(
      frame(1, { n: 1 }) + frame(2, { n: "two" }) + frame(3, { n: 3 }) + "data: not json\n\n",
    );
    await flush();
    expect(got).toEqual([1, 3]);
    expect(errors).toHaveLength(2);
    expect(errors[0]).toBeInstanceOf(TypeError);
    expect(errors[1]).toBeInstanceOf(SyntaxError);
    first.end();
    await advance(1000);
    expect(net.calls[1]?.headers["last-event-id"]).toBe("3");
  });

  it("treats a non-SSE 200 as a failed attempt", async () => {
    const net = scriptedFetch([
      new Response("<html>", { status: 200, headers: { "content-type": "text/html" } }),
      sseStream(),
    ]);
    const client = createClient({ baseUrl: BASE, fetch: net.fetch });
    const errors: unknown[] = [];
    client.subscribe("room", () => undefined, { onError: (e) => errors.push(e) });
    await flush(30);
    expect((errors[0] as PiCloudError).code).toBe("bad_stream");
    await advance(1000);
    expect(net.calls).toHaveLength(2);
  });

  it("reconnects when the stream is silent longer than idleTimeoutMs", async () => {
    const first = sseStream();
    const net = scriptedFetch([first, sseStream()]);
    const client = createClient({ baseUrl: BASE, fetch: net.fetch });
    const errors: unknown[] = [];
    client.subscribe("room", () => undefined, {
      idleTimeoutMs: 5000,
      onError: (e) => errors.push(e),
    });
    await flush();
    await advance(4000);
    first.push(":heartbeat\n\n");
    await advance(4000);
    expect(net.calls).toHaveLength(1);
    await advance(1000);
    expect(first.cancelled).toBe(true);
    expect((errors[0] as Error).name).toBe("IdleTimeout");
    await advance(1000);
    expect(net.calls).toHaveLength(2);
  });
});

describe("unsubscribe", () => {
  it("mid-backoff: no further attempt, no timer left, status closed", async () => {
    const net = scriptedFetch([new TypeError("connection refused")]);
    const client = createClient({ baseUrl: BASE, fetch: net.fetch });
    const statuses: SubscriptionStatus[] = [];
    const stop = client.subscribe("room", () => undefined, { onStatus: (s) => statuses.push(s) });
    await flush(30);
    expect(statuses.at(-1)).toMatchObject({ state: "reconnecting", attempt: 1, delayMs: 1000 });
    expect(vi.getTimerCount()).toBe(1);
    stop();
    expect(vi.getTimerCount()).toBe(0);
    expect(statuses.at(-1)).toEqual({ state: "closed" });
    await advance(120_000);
    expect(net.calls).toHaveLength(1);
    stop(); // a second call does nothing
    expect(statuses.filter((s) => s.state === "closed")).toHaveLength(1);
  });

  it("while open: the stream is aborted and later data is not delivered", async () => {
    const stream = sseStream();
    const net = scriptedFetch([stream]);
    const client = createClient({ baseUrl: BASE, fetch: net.fetch });
    const got: unknown[] = [];
    const stop = client.subscribe("room", (m) => got.push(m.message));
    await flush();
    stream.push(frame(1, "a"));
    await flush();
    stop();
    await flush();
    expect(net.calls[0]?.signal?.aborted).toBe(true);
    expect(got).toEqual(["a"]);
    await advance(60_000);
    expect(net.calls).toHaveLength(1);
  });

  it("an AbortSignal ends it, also while waiting for getToken", async () => {
    const net = scriptedFetch([sseStream()]);
    const client = createClient({ baseUrl: BASE, fetch: net.fetch });
    const controller = new AbortController();
    let release!: (token: string) => void;
    const statuses: SubscriptionStatus[] = [];
    client.subscribe("room", () => undefined, {
      signal: controller.signal,
      getToken: () => new Promise<string>((resolve) => (release = resolve)),
      onStatus: (s) => statuses.push(s),
    });
    await flush();
    controller.abort();
    release("late");
    await flush(30);
    expect(net.calls).toHaveLength(0);
    expect(statuses.at(-1)).toEqual({ state: "closed" });
  });

  it("an already aborted signal never connects", async () => {
    const net = scriptedFetch([sseStream()]);
    const client = createClient({ baseUrl: BASE, fetch: net.fetch });
    const controller = new AbortController();
    controller.abort();
    client.subscribe("room", () => undefined, { signal: controller.signal });
    await flush(30);
    expect(net.calls).toHaveLength(0);
  });
});
