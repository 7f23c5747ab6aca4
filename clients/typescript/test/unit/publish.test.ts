import { describe, expect, it } from "vitest";
import { PiCloudError, createClient } from "../../src/index";
import { flush, jsonResponse, scriptedFetch, sseStream } from "../support/fake-fetch";

const BASE = "http://chat.localhost:8080";

describe("publish", () => {
  it("posts {message} to /realtime/topics/{topic}/messages with the subscription's token", async () => {
    const stream = sseStream();
    const net = scriptedFetch([stream]);
    const client = createClient({ baseUrl: BASE, fetch: net.fetch });
    const tokens = ["tok-1", "tok-2"];
    const sub = client.subscribe("room:1", () => undefined, {
      getToken: () => tokens.shift() ?? "tok-last",
    });
    await flush();
    net.then(jsonResponse(201, { id: 7, published_at: "2026-01-01T00:00:00Z" }));
    expect(await sub.publish({ text: "hi" })).toEqual({
      id: 7,
      published_at: "2026-01-01T00:00:00Z",
    });
    const call = net.calls[1];
    expect(call?.method).toBe("POST");
    expect(call?.url).toBe(`${BASE}/realtime/topics/room%3A1/messages`);
    expect(call?.headers.authorization).toBe("Bearer tok-2"); // a fresh one from getToken
    expect(call?.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(call?.body ?? "")).toEqual({ message: { text: "hi" } });
    sub();
  });

  it("turns a 429 into a PiCloudError with retryAfterSeconds", async () => {
    const net = scriptedFetch([
      new Response(JSON.stringify({ error: { code: "rate_limited", message: "slow down" } }), {
        status: 429,
        headers: { "content-type": "application/json", "retry-after": "2" },
      }),
      jsonResponse(200, { nope: true }),
    ]);
    const client = createClient({ baseUrl: BASE, fetch: net.fetch });
    const error = await client.publish("room", 1, { token: "t" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PiCloudError);
    expect((error as PiCloudError).status).toBe(429);
    expect((error as PiCloudError).retryAfterSeconds).toBe(2);
    // A 2xx answer that is not a publish reply is an error too, not a silent success.
    await expect(client.publish("room", 1, { token: "t" })).rejects.toThrow("not a publish reply");
  });
});
