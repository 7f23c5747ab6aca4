/**
 * Presence: who is connected to a topic. The server sends `event: presence` frames (no
 * `id:`, so they never move the resume cursor); this turns them into `PresenceEvent`s and
 * keeps the set of present subjects as plain data (the React hook and the Svelte store
 * share it).
 */

import type { JsonValue, PresenceEvent, PresenceMap } from "./types";
import type { SseEvent } from "./sse";

/** The change a `presence` event carries; throws on a frame that is not one. */
export function presenceFromEvent(event: SseEvent): PresenceEvent {
  const frame = JSON.parse(event.data) as Partial<Record<keyof PresenceEvent, unknown>>;
  if (
    typeof frame.topic !== "string" ||
    (frame.event !== "joined" && frame.event !== "left") ||
    typeof frame.subject !== "string"
  ) {
    throw new TypeError(`not a presence event: ${event.data.slice(0, 80)}`);
  }
  return {
    topic: frame.topic,
    event: frame.event,
    subject: frame.subject,
    info: (frame.info ?? null) as JsonValue | null,
  };
}

/** `present` after `change`: a join adds its subject (with its info), a leave removes it. */
export function withPresence(present: PresenceMap, change: PresenceEvent): PresenceMap {
  const subjects = { ...(present[change.topic] ?? {}) };
  if (change.event === "joined") subjects[change.subject] = change.info;
  else delete subjects[change.subject];
  return { ...present, [change.topic]: subjects };
}

/**
 * `present` when a stream (re)opens: the server tells it everyone present again, so what
 * was known is dropped (a leave missed while disconnected must not linger).
 */
export function presenceOnOpen(_present: PresenceMap): PresenceMap {
  return {};
}
