import { describe, expect, it } from "vitest";
import {
  initialSubscriptionState,
  presenceFromEvent,
  withPresence,
  withPresenceChange,
  withStatus,
} from "../../src/index";
import type { PresenceMap } from "../../src/index";

const event = (data: string) => ({ type: "presence", data, lastEventId: "" });

describe("presence state", () => {
  it("a join adds the subject with its info, a leave removes it, per topic", () => {
    let present: PresenceMap = {};
    present = withPresence(present, { topic: "a", event: "joined", subject: "u1", info: { n: 1 } });
    present = withPresence(present, { topic: "a", event: "joined", subject: "u2", info: null });
    present = withPresence(present, { topic: "b", event: "joined", subject: "u1", info: null });
    present = withPresence(present, { topic: "a", event: "left", subject: "u1", info: { n: 1 } });
    expect(present).toEqual({ a: { u2: null }, b: { u1: null } });
  });

  it("an opened stream starts from nobody (the server tells it everyone again)", () => {
    let state = initialSubscriptionState<unknown>();
    state = withPresenceChange(state, { topic: "a", event: "joined", subject: "u1", info: null });
    expect(state.presence).toEqual({ a: { u1: null } });
    state = withStatus(state, { state: "reconnecting", attempt: 1, delayMs: 10, error: null });
    expect(state.presence).toEqual({ a: { u1: null } });
    state = withStatus(state, { state: "open" });
    expect(state.presence).toEqual({});
  });

  it("reads presence frames and refuses what is not one", () => {
    expect(
      presenceFromEvent(event('{"topic":"a","event":"joined","subject":"u","info":{"x":1}}')),
    ).toEqual({ topic: "a", event: "joined", subject: "u", info: { x: 1 } });
    expect(presenceFromEvent(event('{"topic":"a","event":"left","subject":"u"}')).info).toBeNull();
    for (const bad of ['{"topic":"a","event":"moved","subject":"u"}', '{"topic":"a"}', "[1]", "{"]) {
      expect(() => presenceFromEvent(event(bad))).toThrow();
    }
  });
});
