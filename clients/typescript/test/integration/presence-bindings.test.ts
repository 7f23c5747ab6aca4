// @vitest-environment jsdom
import { act, cleanup, render, screen } from "@testing-library/react";
import { createElement } from "react";
import { get } from "svelte/store";
import { afterEach, describe, expect, inject, it } from "vitest";
import { createClient } from "../../src/index";
import { PiCloudProvider, usePresence } from "../../src/react/index";
import { presenceStore } from "../../src/svelte/index";
import { adminClient, createTopic, uniqueTopic, until } from "./fixtures";

const app = inject("picloud");

async function presenceTopic(): Promise<string> {
  const topic = uniqueTopic("who");
  await createTopic(app, topic, { auth_mode: "token" });
  await adminClient(app)
    .endpoint(`/api/v1/apps/${app.appId}/topics/${encodeURIComponent(topic)}`)
    .patch({ presence: true });
  await new Promise((r) => setTimeout(r, 500)); // the flag change ends live streams
  return topic;
}

async function tokenFor(topic: string, subject: string, name: string): Promise<string> {
  const minted = await adminClient(app).mintToken({
    appId: app.appId,
    topics: [topic],
    subject,
    info: { name },
  });
  return minted.token;
}

function WhoIsHere(props: { topic: string; token: string }) {
  const { present } = usePresence(props.topic, { token: props.token });
  const names = Object.values(present).map((info) => (info as { name: string }).name);
  return createElement("p", { "data-testid": "who" }, names.sort().join(", ") || "nobody");
}

afterEach(() => cleanup());

describe("presence bindings against a running PiCloud", () => {
  it("usePresence renders who is here as they come and go", async () => {
    const topic = await presenceTopic();
    const client = createClient({ baseUrl: app.url });
    const view = render(
      createElement(
        PiCloudProvider,
        { client },
        createElement(WhoIsHere, { topic, token: await tokenFor(topic, "u1", "Ada") }),
      ),
    );
    await screen.findByText("Ada", undefined, { timeout: 10_000 });
    const other = presenceStore(client, topic, { token: await tokenFor(topic, "u2", "Bob") });
    const leave = other.subscribe(() => undefined);
    await screen.findByText("Ada, Bob", undefined, { timeout: 10_000 });
    await until(() => Object.keys(get(other)).length === 2, 10_000, "the store sees both");
    expect(get(other)).toEqual({ u1: { name: "Ada" }, u2: { name: "Bob" } });
    await act(async () => {
      leave();
      await new Promise((r) => setTimeout(r, 50));
    });
    await screen.findByText("Ada", undefined, { timeout: 10_000 });
    view.unmount();
  });
});
