// @vitest-environment jsdom
import { act, cleanup, render, screen } from "@testing-library/react";
import { createElement, StrictMode } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createClient } from "../../src/index";
import type { PiCloudClient } from "../../src/index";
import { PiCloudProvider, useSubscription } from "../../src/react/index";
import type { UseSubscriptionOptions } from "../../src/react/index";
import { flush, scriptedFetch, sseStream } from "../support/fake-fetch";

function frame(id: number, message: unknown): string {
  return `id: ${id}\ndata: ${JSON.stringify({ topic: "room", message, published_at: "t" })}\n\n`;
}

function Messages(props: {
  topic: string | readonly string[] | null;
  options?: UseSubscriptionOptions<string>;
}) {
  const { messages, status } = useSubscription<string>(props.topic, props.options);
  return createElement(
    "div",
    null,
    createElement("p", { "data-testid": "status" }, status.state),
    createElement(
      "ul",
      null,
      messages.map((m) => createElement("li", { key: m.id }, m.message)),
    ),
  );
}

afterEach(() => cleanup());

describe("useSubscription", () => {
  it("renders received messages, keeps the latest `keep`, and ends on unmount", async () => {
    const stream = sseStream();
    const net = scriptedFetch([stream]);
    const client = createClient({ baseUrl: "http://a.localhost", fetch: net.fetch });
    const view = render(
      createElement(
        PiCloudProvider,
        { client },
        createElement(Messages, { topic: "room", options: { keep: 2, token: "t" } }),
      ),
    );
    await act(async () => {
      await flush();
    });
    expect(screen.getByTestId("status").textContent).toBe("open");
    await act(async () => {
      stream.push(frame(1, "one") + frame(2, "two") + frame(3, "three"));
      await flush();
    });
    expect(screen.getAllByRole("listitem").map((li) => li.textContent)).toEqual(["two", "three"]);
    expect(net.calls[0]?.headers.authorization).toBe("Bearer t");
    view.unmount();
    await flush();
    expect(net.calls[0]?.signal?.aborted).toBe(true);
  });

  it("shows only the new incarnation after a reset and calls onReset", async () => {
    const stream = sseStream();
    const net = scriptedFetch([stream]);
    const client = createClient({ baseUrl: "http://a.localhost", fetch: net.fetch });
    const onReset = vi.fn();
    render(
      createElement(
        PiCloudProvider,
        { client },
        createElement(Messages, { topic: "room", options: { onReset } }),
      ),
    );
    await act(async () => {
      await flush();
      stream.push(frame(4, "old four") + frame(5, "old five"));
      await flush();
    });
    expect(screen.getAllByRole("listitem")).toHaveLength(2);
    await act(async () => {
      stream.push('id: v1.2.0\nevent: reset\ndata: {"topic":"room","epoch":2,"oldest":1}\n\n');
      stream.push(frame(1, "new one"));
      await flush();
    });
    expect(onReset).toHaveBeenCalledWith({ topic: "room", epoch: 2, oldest: 1 });
    expect(screen.getAllByRole("listitem").map((li) => li.textContent)).toEqual(["new one"]);
  });

  it("follows a list of topics on one stream; a reset drops only that topic's messages", async () => {
    const stream = sseStream();
    const net = scriptedFetch([stream]);
    const client = createClient({ baseUrl: "http://a.localhost", fetch: net.fetch });
    const on = (topic: string, id: string, message: string): string =>
      `id: ${id}\ndata: ${JSON.stringify({ topic, message, published_at: "t" })}\n\n`;
    const view = render(createElement(Messages, { topic: ["room", "lobby"], options: { client } }));
    await act(async () => flush());
    // A new array with the same topics is the same stream.
    view.rerender(createElement(Messages, { topic: ["room", "lobby"], options: { client } }));
    await act(async () => {
      stream.push(on("room", "v2m.c1", "r1") + on("lobby", "v2m.c2", "l1") + on("room", "v2m.c3", "r2"));
      await flush();
    });
    expect(net.calls.map((c) => c.url)).toEqual(["http://a.localhost/realtime?topic=room&topic=lobby"]);
    expect(screen.getAllByRole("listitem").map((li) => li.textContent)).toEqual(["r1", "l1", "r2"]);
    await act(async () => {
      stream.push('id: v2m.c4\nevent: reset\ndata: {"topic":"room","epoch":2,"oldest":null}\n\n');
      await flush();
    });
    expect(screen.getAllByRole("listitem").map((li) => li.textContent)).toEqual(["l1"]);
    view.unmount();
  });

  it("resubscribes when the topic changes and not on a re-render with new callbacks", async () => {
    const first = sseStream();
    const second = sseStream();
    const net = scriptedFetch([first, second]);
    const client = createClient({ baseUrl: "http://a.localhost", fetch: net.fetch });
    const seen: string[] = [];
    const view = render(
      createElement(Messages, {
        topic: "a",
        options: { client, onMessage: (m) => seen.push(`1:${m.message}`) },
      }),
    );
    await act(async () => flush());
    view.rerender(
      createElement(Messages, {
        topic: "a",
        options: { client, onMessage: (m) => seen.push(`2:${m.message}`) },
      }),
    );
    await act(async () => {
      first.push(frame(1, "x"));
      await flush();
    });
    expect(net.calls).toHaveLength(1);
    expect(seen).toEqual(["2:x"]);
    view.rerender(createElement(Messages, { topic: "b", options: { client } }));
    await act(async () => flush());
    expect(net.calls.map((c) => c.url)).toEqual([
      "http://a.localhost/realtime/topics/a",
      "http://a.localhost/realtime/topics/b",
    ]);
    expect(net.calls[0]?.signal?.aborted).toBe(true);
    expect(screen.queryAllByRole("listitem")).toHaveLength(0);
    await act(async () => {
      second.push(frame(1, "in b"));
      await flush();
    });
    expect(screen.getAllByRole("listitem").map((li) => li.textContent)).toEqual(["in b"]);
    view.rerender(createElement(Messages, { topic: null, options: { client } }));
    await act(async () => flush());
    expect(net.calls[1]?.signal?.aborted).toBe(true);
    expect(screen.getByTestId("status").textContent).toBe("closed");
    expect(screen.queryAllByRole("listitem")).toHaveLength(0);
  });

  it("does nothing for a null topic and cleans up under StrictMode", async () => {
    const subscribe = vi.fn(() => Object.assign(vi.fn(), { publish: vi.fn() }));
    const client: PiCloudClient = {
      ...createClient({ baseUrl: "http://a.localhost", fetch: scriptedFetch().fetch }),
      subscribe,
    };
    const view = render(createElement(Messages, { topic: null, options: { client } }));
    expect(subscribe).not.toHaveBeenCalled();
    expect(screen.getByTestId("status").textContent).toBe("closed");
    view.rerender(
      createElement(StrictMode, null, createElement(Messages, { topic: "x", options: { client } })),
    );
    const unsubscribers = subscribe.mock.results.map((r) => r.value as ReturnType<typeof vi.fn>);
    view.unmount();
    // Every subscription made (StrictMode mounts effects twice) was ended.
    expect(unsubscribers.length).toBeGreaterThan(0);
    for (const unsubscribe of unsubscribers) expect(unsubscribe).toHaveBeenCalledTimes(1);
  });

  it("throws a clear error without a client", () => {
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    expect(() => render(createElement(Messages, { topic: "x" }))).toThrow(/PiCloudProvider/);
    vi.restoreAllMocks();
  });
});
