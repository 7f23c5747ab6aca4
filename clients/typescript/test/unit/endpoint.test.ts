import { describe, expect, it, vi } from "vitest";
import { PiCloudError, createClient, tokenCache } from "../../src/index";
import { jsonResponse, scriptedFetch } from "../support/fake-fetch";

const topicValidator = {
  parse(input: unknown): { name: string } {
    if (
      typeof input === "object" &&
      input !== null &&
      typeof (input as { name?: unknown }).name === "string"
    ) {
      return { name: (input as { name: string }).name };
    }
    throw new TypeError("not a topic");
  },
};

describe("endpoint", () => {
  it("GETs JSON with the API key, query parameters and a validator", async () => {
    const net = scriptedFetch([jsonResponse(200, { name: "room", extra: 1 })]);
    const client = createClient({ baseUrl: "http://h:1/", fetch: net.fetch, apiKey: "pk_1" });
    const topic = await client
      .endpoint("/api/v1/apps/a/topics/room")
      .get({ validate: topicValidator, query: { limit: 5, after: undefined, live: true } });
    expect(topic).toEqual({ name: "room" });
    expect(net.calls[0]).toMatchObject({
      url: "http://h:1/api/v1/apps/a/topics/room?limit=5&live=true",
      method: "GET",
      body: undefined,
    });
    expect(net.calls[0]?.headers.authorization).toBe("Bearer pk_1");
    expect(net.calls[0]?.headers.accept).toBe("application/json");
  });

  it("POSTs, PUTs and PATCHes a JSON body; DELETE with 204 gives undefined", async () => {
    const net = scriptedFetch([
      jsonResponse(201, { id: 1 }),
      jsonResponse(200, { ok: true }),
      jsonResponse(200, { ok: true }),
      new Response(null, { status: 204 }),
    ]);
    const client = createClient({
      baseUrl: "http://h",
      fetch: net.fetch,
      headers: { "X-Trace": "1" },
    });
    const ep = client.endpoint("things");
    expect(await ep.post({ message: { a: 1 } })).toEqual({ id: 1 });
    expect(await ep.put([1])).toEqual({ ok: true });
    expect(await ep.patch({ b: null }, { headers: { "If-Match": "x" } })).toEqual({ ok: true });
    expect(await ep.delete()).toBeUndefined();
    expect(net.calls.map((c) => [c.method, c.url, c.body])).toEqual([
      ["POST", "http://h/things", '{"message":{"a":1}}'],
      ["PUT", "http://h/things", "[1]"],
      ["PATCH", "http://h/things", '{"b":null}'],
      ["DELETE", "http://h/things", undefined],
    ]);
    expect(net.calls[0]?.headers["content-type"]).toBe("application/json");
    expect(net.calls[0]?.headers["x-trace"]).toBe("1");
    expect(net.calls[2]?.headers["if-match"]).toBe("x");
    expect(net.calls[3]?.headers["content-type"]).toBeUndefined();
  });

  it("turns the server's error envelope into a PiCloudError", async () => {
    const net = scriptedFetch([
      jsonResponse(409, { error: { code: "conflict", message: "already exists (topics_pkey)" } }),
    ]);
    const client = createClient({ baseUrl: "http://h", fetch: net.fetch });
    const error = await client
      .endpoint("/x")
      .post({})
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PiCloudError);
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({
      status: 409,
      code: "conflict",
      message: "already exists (topics_pkey)",
      name: "PiCloudError",
    });
  });

  it("still gives a PiCloudError for an error that is not an envelope", async () => {
    const net = scriptedFetch([
      new Response("Bad Gateway", { status: 502, statusText: "Bad Gateway" }),
      new Response("", { status: 500, statusText: "Internal" }),
    ]);
    const client = createClient({ baseUrl: "http://h", fetch: net.fetch });
    await expect(client.endpoint("/x").get()).rejects.toMatchObject({
      status: 502,
      code: "http_502",
      message: "Bad Gateway",
    });
    await expect(client.endpoint("/x").get()).rejects.toMatchObject({
      status: 500,
      code: "http_500",
      message: "Internal",
    });
  });

  it("lets the validator's error through", async () => {
    const net = scriptedFetch([jsonResponse(200, { nope: 1 })]);
    const client = createClient({ baseUrl: "http://h", fetch: net.fetch });
    await expect(client.endpoint("/x").get({ validate: topicValidator })).rejects.toThrow(
      "not a topic",
    );
  });

  it("mints a subscriber token through the admin API", async () => {
    const net = scriptedFetch([
      jsonResponse(201, { token: "v1.abc", expires_at: "2030-01-01T00:00:00Z" }),
    ]);
    const client = createClient({ baseUrl: "http://h", fetch: net.fetch, apiKey: "admin" });
    const minted = await client.mintToken({ appId: "app-1", topic: "room:1", ttlSeconds: 60 });
    expect(minted).toEqual({ token: "v1.abc", expires_at: "2030-01-01T00:00:00Z" });
    expect(net.calls[0]).toMatchObject({
      method: "POST",
      url: "http://h/api/v1/apps/app-1/topics/room%3A1/tokens",
      body: '{"ttl_seconds":60}',
    });
  });

  it("requires a baseUrl", () => {
    expect(() => createClient({ baseUrl: "" })).toThrow(TypeError);
  });
});

describe("tokenCache", () => {
  it("reuses a token until shortly before it expires, and shares one load", async () => {
    let now = Date.parse("2030-01-01T00:00:00Z");
    let n = 0;
    const load = vi.fn(async () => ({
      token: `t${++n}`,
      expires_at: new Date(now + 60_000).toISOString(),
    }));
    const cache = tokenCache(load, { refreshBeforeMs: 10_000, now: () => now });
    expect(await Promise.all([cache.get(), cache.get()])).toEqual(["t1", "t1"]);
    now += 49_000;
    expect(await cache.get()).toBe("t1");
    now += 1_000;
    expect(await cache.get()).toBe("t2");
    cache.invalidate();
    expect(await cache.get()).toBe("t3");
    expect(load).toHaveBeenCalledTimes(3);
  });

  it("does not cache a failed load", async () => {
    const load = vi
      .fn<() => Promise<{ token: string; expires_at: string }>>()
      .mockRejectedValueOnce(new Error("backend down"))
      .mockResolvedValueOnce({ token: "ok", expires_at: "2999-01-01T00:00:00Z" });
    const cache = tokenCache(load);
    await expect(cache.get()).rejects.toThrow("backend down");
    expect(await cache.get()).toBe("ok");
  });
});
