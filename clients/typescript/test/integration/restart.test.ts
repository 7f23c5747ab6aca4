import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../src/index";
import type { RunningServer } from "./server";
import { startServer } from "./server";
import type { TestApp } from "./fixtures";
import {
  controlledFetch,
  createTopic,
  publish,
  recorder,
  seq,
  setUpApp,
  uniqueTopic,
  until,
} from "./fixtures";

/** A server of this file's own, stopped and started again by the test. */
let server: RunningServer;
let app: TestApp;

beforeAll(async () => {
  server = await startServer();
  app = await setUpApp(server.url, server.adminKey);
});

afterAll(async () => {
  await server?.stop();
  if (server) rmSync(server.dataDir, { recursive: true, force: true });
});

describe("a server restart", () => {
  it("is survived: the client reconnects and resumes with no lost or repeated message", async () => {
    const topic = uniqueTopic("restart");
    await createTopic(app, topic);
    const net = controlledFetch();
    const client = createClient({ baseUrl: app.url, fetch: net.fetch });
    const rec = recorder<number>({ backoff: { initialMs: 100, maxMs: 400 } });
    const stop = client.subscribe(topic, rec.onMessage, rec.options);
    try {
      await rec.waitForStatus((s) => s.state === "open");
      await publish(app, topic, 1);
      await publish(app, topic, 2);
      await rec.waitForMessages(2);

      expect(await server.stop()).toBe(0);
      // The client notices and retries against the stopped server: connection refused.
      const refusedBefore = rec.statuses.length;
      await until(
        () =>
          rec.statuses.slice(refusedBefore).filter((s) => s.state === "reconnecting").length >= 2,
        10_000,
        "failed reconnects",
      );
      net.hold(); // keep the next attempt back until messages were published meanwhile
      server = await startServer({
        dataDir: server.dataDir,
        port: server.port,
        adminKey: server.adminKey,
      });
      await publish(app, topic, 3);
      await publish(app, topic, 4);
      net.release();

      await rec.waitForMessages(4, 15_000);
      await publish(app, topic, 5);
      await rec.waitForMessages(5);
      expect(rec.messages.map((m) => m.message)).toEqual([1, 2, 3, 4, 5]);
      expect(seq(net.requests.at(-1)?.headers["last-event-id"])).toBe("2");
    } finally {
      stop();
    }
  });
});
