import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { backoffDelay, createClient } from "../../src/index";
import type { SubscriptionStatus } from "../../src/index";
import { flush, scriptedFetch, sseStream } from "../support/fake-fetch";

describe("backoffDelay", () => {
  it("doubles from 1 s up to 30 s", () => {
    const noJitter = () => 0;
    const delays = [1, 2, 3, 4, 5, 6, 7, 8, 20].map((n) => backoffDelay(n, {}, noJitter));
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
  });

  it("takes off up to 20% at random by default", () => {
    expect(backoffDelay(1, {}, () => 1)).toBe(800);
    expect(backoffDelay(3, {}, () => 0.5)).toBe(3600);
    expect(backoffDelay(10, {}, () => 0.999)).toBe(24006);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(4, {});
      expect(d).toBeGreaterThanOrEqual(6400);
      expect(d).toBeLessThanOrEqual(8000);
    }
  });

  it("follows its options", () => {
    const opts = { initialMs: 100, factor: 3, maxMs: 1000, jitter: 0 };
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, opts))).toEqual([100, 300, 900, 1000]);
  });
});

describe("reconnect schedule", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it("waits 1, 2, 4, 8, 16, 30, 30 s between failed attempts", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0);
    const net = scriptedFetch([]); // every attempt: connection refused
    const client = createClient({ baseUrl: "http://a.localhost", fetch: net.fetch });
    const statuses: SubscriptionStatus[] = [];
    const stop = client.subscribe("t", () => undefined, { onStatus: (s) => statuses.push(s) });
    await vi.advanceTimersByTimeAsync(200_000);
    stop();
    const times = net.calls.map((c) => c.at);
    expect(times.slice(0, 9)).toEqual([0, 1000, 3000, 7000, 15000, 31000, 61000, 91000, 121000]);
    const delays = statuses.flatMap((s) => (s.state === "reconnecting" ? [s.delayMs] : []));
    expect(delays.slice(0, 8)).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    const attempts = statuses.flatMap((s) => (s.state === "connecting" ? [s.attempt] : []));
    expect(attempts.slice(0, 4)).toEqual([1, 2, 3, 4]);
  });

  it("applies jitter to each wait", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    const net = scriptedFetch([]);
    const client = createClient({ baseUrl: "http://a.localhost", fetch: net.fetch });
    const stop = client.subscribe("t", () => undefined);
    await vi.advanceTimersByTimeAsync(20_000);
    stop();
    expect(net.calls.map((c) => c.at).slice(0, 5)).toEqual([0, 900, 2700, 6300, 13500]);
  });

  it("starts over at 1 s after a successful open", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0);
    const opened = sseStream();
    const net = scriptedFetch([
      new TypeError("refused"),
      new TypeError("refused"),
      new TypeError("refused"),
      opened,
      new TypeError("refused"),
      new TypeError("refused"),
    ]);
    const client = createClient({ baseUrl: "http://a.localhost", fetch: net.fetch });
    const stop = client.subscribe("t", () => undefined);
    await vi.advanceTimersByTimeAsync(7000); // attempts at 0, 1000, 3000, 7000 (opens)
    expect(net.calls).toHaveLength(4);
    await vi.advanceTimersByTimeAsync(10_000);
    opened.end(); // at 17000
    await flush();
    await vi.advanceTimersByTimeAsync(5000);
    stop();
    expect(net.calls.map((c) => c.at)).toEqual([0, 1000, 3000, 7000, 18000, 20000]);
  });

  it("uses the server's retry: field as the first delay", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0);
    const opened = sseStream();
    const net = scriptedFetch([opened]);
    const client = createClient({ baseUrl: "http://a.localhost", fetch: net.fetch });
    const stop = client.subscribe("t", () => undefined);
    await flush();
    opened.push("retry: 250\n\n");
    opened.end();
    await vi.advanceTimersByTimeAsync(1000);
    stop();
    expect(net.calls.map((c) => c.at)).toEqual([0, 250, 750]);
  });
});
