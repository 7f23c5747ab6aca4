import { describe, expect, it } from "vitest";
import { SseParser } from "../../src/subscribe";
import type { SseEvent } from "../../src/subscribe";

interface Parsed {
  events: SseEvent[];
  retries: number[];
  comments: string[];
}

function parse(chunks: string[], initialId = ""): Parsed {
  const out: Parsed = { events: [], retries: [], comments: [] };
  const parser = new SseParser(
    {
      onEvent: (e) => out.events.push(e),
      onRetry: (ms) => out.retries.push(ms),
      onComment: (c) => out.comments.push(c),
    },
    initialId,
  );
  for (const chunk of chunks) parser.push(chunk);
  return out;
}

/** Every way of cutting `text` in two, plus one character at a time. */
function splits(text: string): string[][] {
  const ways: string[][] = [[text], Array.from(text)];
  for (let i = 1; i < text.length; i++) ways.push([text.slice(0, i), text.slice(i)]);
  for (let i = 1; i < text.length; i++) {
    for (let j = i + 1; j < text.length; j += 3) {
      ways.push([text.slice(0, i), text.slice(i, j), text.slice(j)]);
    }
  }
  return ways;
}

describe("SseParser", () => {
  it("dispatches a message with its id", () => {
    const { events } = parse(['id: 1\ndata: {"topic":"t","message":1}\n\n']);
    expect(events).toEqual([
      { type: "message", data: '{"topic":"t","message":1}', lastEventId: "1" },
    ]);
  });

  it("joins multi-line data with LF and drops the final newline", () => {
    const { events } = parse(["data: first\ndata: second\ndata:\ndata:  indented\n\n"]);
    expect(events).toHaveLength(1);
    expect(events[0]?.data).toBe("first\nsecond\n\n indented");
  });

  it("accepts CRLF, CR and LF line endings, mixed", () => {
    const stream = "data: a\r\ndata: b\r\n\r\ndata: c\rdata: d\r\rdata: e\n\r\n";
    const { events } = parse([stream]);
    expect(events.map((e) => e.data)).toEqual(["a\nb", "c\nd", "e"]);
  });

  it("reports comments and does not dispatch them", () => {
    const { events, comments } = parse([":heartbeat\n\n: hello\ndata: x\n\n"]);
    expect(comments).toEqual(["heartbeat", " hello"]);
    expect(events.map((e) => e.data)).toEqual(["x"]);
  });

  it("reads the event type and resets it after each event", () => {
    const { events } = parse([
      'event: history_truncated\ndata: {"requested":3,"oldest":10}\n\ndata: next\n\n',
    ]);
    expect(events.map((e) => e.type)).toEqual(["history_truncated", "message"]);
  });

  it("keeps the last event id across events and takes one given at start", () => {
    const { events } = parse(["data: a\n\nid: 7\ndata: b\n\ndata: c\n\n"], "5");
    expect(events.map((e) => e.lastEventId)).toEqual(["5", "7", "7"]);
  });

  it("updates the id even when an event has no data, and ignores ids with NUL", () => {
    const parser = new SseParser({ onEvent: () => undefined });
    parser.push("id: 3\n\n");
    expect(parser.lastId).toBe("3");
    parser.push("id: 4\u0000\n\n");
    expect(parser.lastId).toBe("3");
    parser.push("id\n\n");
    expect(parser.lastId).toBe("");
  });

  it("does not commit the id of an event that never ended", () => {
    const parser = new SseParser({ onEvent: () => undefined }, "8");
    parser.push("id: 9\ndata: half");
    expect(parser.lastId).toBe("8");
    parser.push("\n");
    expect(parser.lastId).toBe("8");
    parser.push("\n");
    expect(parser.lastId).toBe("9");
  });

  it("takes retry only when it is all digits", () => {
    const { retries } = parse(["retry: 2500\n\nretry: soon\nretry: 12a\nretry:300\n\n"]);
    expect(retries).toEqual([2500, 300]);
  });

  it("treats a field without colon as an empty value and ignores unknown fields", () => {
    const { events } = parse(["data\nfoo: bar\n\ndata:no-space\n\n"]);
    expect(events.map((e) => e.data)).toEqual(["", "no-space"]);
  });

  it("strips only one leading space of a value", () => {
    const { events } = parse(["data:   three\n\n"]);
    expect(events[0]?.data).toBe("  three");
  });

  it("drops an event that the stream ends before its blank line", () => {
    const { events } = parse(["data: complete\n\ndata: partial\n"]);
    expect(events.map((e) => e.data)).toEqual(["complete"]);
  });

  it("ignores a byte order mark at the start only", () => {
    const { events } = parse(["\ufeffdata: a\n\n", "data: \ufeffb\n\n"]);
    expect(events.map((e) => e.data)).toEqual(["a", "\ufeffb"]);
  });

  it("gives the same events however the stream is cut into chunks", () => {
    const stream =
      ':heartbeat\r\n\r\nid: 1\r\ndata: {"a":\r\ndata: 1}\r\n\r\n' +
      'event: history_truncated\rdata: {"requested":1,"oldest":5}\r\r' +
      "id: 2\ndata: é ✓\n\nretry: 100\n\n";
    const whole = parse([stream]);
    expect(whole.events).toHaveLength(3);
    expect(whole.comments).toEqual(["heartbeat"]);
    expect(whole.retries).toEqual([100]);
    for (const chunks of splits(stream)) {
      expect(parse(chunks)).toEqual(whole);
    }
  });

  it("does not read a CR at a chunk end followed by LF as two line ends", () => {
    const { events } = parse(["data: a\r", "\ndata: b\r", "\n\r", "\n"]);
    expect(events.map((e) => e.data)).toEqual(["a\nb"]);
  });
});
