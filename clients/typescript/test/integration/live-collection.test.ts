import { describe, expect, inject, it } from "vitest";
import { createClient } from "../../src/index";
import { adminClient, createTopic, recorder, uniqueTopic } from "./fixtures";

const app = inject("picloud");

interface Todo {
  title: string;
  done: boolean;
}
interface DocEvent {
  type: string;
  id: string;
  data?: Todo;
}

describe("a live collection (the README's todo list)", () => {
  it("keeps a map of the collection in step with every change", async () => {
    const topic = uniqueTopic("todos");
    const collection = topic;
    await createTopic(app, topic);
    const admin = adminClient(app);
    const base = `/api/v1/apps/${app.appId}`;
    const handler = await admin.endpoint(`${base}/handlers`).post(
      { name: `live-${topic}`, kind: "topic", topic },
      {
        validate: {
          parse: (input: unknown) => ({ id: String((input as { id?: unknown }).id) }),
        },
      },
    );
    await admin.endpoint(`${base}/triggers`).post({
      name: `live-${topic}`,
      source: "docs",
      filter: { match: collection },
      handler_id: handler.id,
    });

    const todos = new Map<string, Todo>();
    const client = createClient({ baseUrl: app.url });
    const rec = recorder<DocEvent>({ lastEventId: "0" });
    const stop = client.subscribe<DocEvent>(
      topic,
      (m) => {
        rec.onMessage(m);
        if (m.message.type === "delete") todos.delete(m.message.id);
        else if (m.message.data) todos.set(m.message.id, m.message.data);
      },
      rec.options,
    );
    try {
      await rec.waitForStatus((s) => s.state === "open");
      const doc = (id: string) => admin.endpoint(`${base}/collections/${collection}/docs/${id}`);
      await doc("milk").put({ title: "milk", done: false });
      await doc("eggs").put({ title: "eggs", done: false });
      await doc("milk").put({ title: "milk", done: true });
      await doc("eggs").delete();
      await rec.waitForMessages(4);
      expect(rec.messages.map((m) => [m.message.type, m.message.id])).toEqual([
        ["insert", "milk"],
        ["insert", "eggs"],
        ["update", "milk"],
        ["delete", "eggs"],
      ]);
      expect([...todos.entries()]).toEqual([["milk", { title: "milk", done: true }]]);
    } finally {
      stop();
    }
  });
});
