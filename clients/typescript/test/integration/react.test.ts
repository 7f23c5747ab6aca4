// @vitest-environment jsdom
import { act, cleanup, render, screen } from "@testing-library/react";
import { createElement } from "react";
import { afterEach, describe, expect, inject, it } from "vitest";
import { createClient } from "../../src/index";
import { PiCloudProvider, useSubscription } from "../../src/react/index";
import { createTopic, mintToken, publish, uniqueTopic } from "./fixtures";

const app = inject("picloud");

interface Chat {
  user: string;
  text: string;
}

const chatValidator = {
  parse(input: unknown): Chat {
    const c = input as Partial<Chat> | null;
    if (typeof c?.user !== "string" || typeof c.text !== "string")
      throw new TypeError("not a chat message");
    return { user: c.user, text: c.text };
  },
};

function Room(props: { topic: string; getToken: () => Promise<string> }) {
  const { messages, status } = useSubscription<Chat>(props.topic, {
    getToken: props.getToken,
    validate: chatValidator,
  });
  return createElement(
    "section",
    null,
    createElement("p", { "data-testid": "status" }, status.state),
    createElement(
      "ul",
      null,
      messages.map((m) =>
        createElement("li", { key: m.id }, `${m.message.user}: ${m.message.text}`),
      ),
    ),
  );
}

afterEach(() => cleanup());

describe("useSubscription against a running PiCloud", () => {
  it("renders the messages it receives and ends the stream on unmount", async () => {
    const topic = uniqueTopic("react");
    await createTopic(app, topic, { auth_mode: "token" });
    const client = createClient({ baseUrl: app.url });
    const getToken = async () => (await mintToken(app, topic, 60)).token;
    const view = render(
      createElement(PiCloudProvider, { client }, createElement(Room, { topic, getToken })),
    );
    await screen.findByText("open", undefined, { timeout: 10_000 });
    await act(async () => {
      await publish(app, topic, { user: "ann", text: "hello" });
      await publish(app, topic, { user: "bob", text: "hi ann" });
      await publish(app, topic, { wrong: "shape" });
      await publish(app, topic, { user: "ann", text: "bye" });
    });
    await screen.findByText("ann: bye", undefined, { timeout: 10_000 });
    expect(screen.getAllByRole("listitem").map((li) => li.textContent)).toEqual([
      "ann: hello",
      "bob: hi ann",
      "ann: bye",
    ]);
    view.unmount();
  });
});
