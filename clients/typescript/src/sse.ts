/**
 * The event-stream parser (WHATWG HTML, "Server-sent events", parsing an event stream).
 * It imports nothing, so the same code also ships to the operator dashboard as a plain
 * ES module (see `scripts/dashboard-sse.mjs`).
 */

/** One dispatched event. */
export interface SseEvent {
  /** The `event:` field, or "message". */
  type: string;
  /** The `data:` lines joined with "\n". */
  data: string;
  /** The last event id seen on the stream so far (it carries over between events). */
  lastEventId: string;
}

export interface SseParserHandlers {
  onEvent: (event: SseEvent) => void;
  /** A valid `retry:` field, in milliseconds. */
  onRetry?: (ms: number) => void;
  /** A comment line (`:heartbeat`), without the colon. */
  onComment?: (text: string) => void;
}

/**
 * An incremental event-stream parser: feed it decoded text in chunks split anywhere
 * (inside a field, between CR and LF); it calls back per complete event. Lines end with
 * CRLF, LF or CR; an event ends with an empty line; an unterminated event at the end of
 * the stream is dropped, as the standard says.
 */
export class SseParser {
  private buffer = "";
  private skipLeadingLf = false;
  private sawFirstChunk = false;
  private data = "";
  private hasData = false;
  private eventType = "";
  /** The id field as last read; committed to `lastEventId` when an event ends. */
  private idBuffer: string;
  private lastEventId: string;

  constructor(
    private readonly handlers: SseParserHandlers,
    initialLastEventId = "",
  ) {
    this.idBuffer = initialLastEventId;
    this.lastEventId = initialLastEventId;
  }

  /** Feed the next piece of the stream. */
  push(chunk: string): void {
    if (chunk.length === 0) return;
    if (!this.sawFirstChunk) {
      this.sawFirstChunk = true;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    if (this.skipLeadingLf) {
      this.skipLeadingLf = false;
      if (chunk.charCodeAt(0) === 0x0a) chunk = chunk.slice(1);
    }
    let text = this.buffer + chunk;
    let start = 0;
    for (;;) {
      let end = -1;
      for (let i = start; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c === 0x0a || c === 0x0d) {
          end = i;
          break;
        }
      }
      if (end < 0) break;
      const line = text.slice(start, end);
      if (text.charCodeAt(end) === 0x0d) {
        if (end + 1 < text.length) {
          start = text.charCodeAt(end + 1) === 0x0a ? end + 2 : end + 1;
        } else {
          // CR at the very end: a following LF (in the next chunk) belongs to it.
          this.skipLeadingLf = true;
          start = end + 1;
        }
      } else {
        start = end + 1;
      }
      this.line(line);
    }
    text = text.slice(start);
    this.buffer = text;
  }

  /**
   * The id that a reconnect should send as `Last-Event-ID`: that of the last event that
   * ended (an id in an unfinished event does not count).
   */
  get lastId(): string {
    return this.lastEventId;
  }

  private line(line: string): void {
    if (line.length === 0) {
      this.dispatch();
      return;
    }
    if (line.charCodeAt(0) === 0x3a /* : */) {
      this.handlers.onComment?.(line.slice(1));
      return;
    }
    const colon = line.indexOf(":");
    let field: string;
    let value: string;
    if (colon < 0) {
      field = line;
      value = "";
    } else {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    }
    switch (field) {
      case "event":
        this.eventType = value;
        break;
      case "data":
        this.data = this.hasData ? `${this.data}\n${value}` : value;
        this.hasData = true;
        break;
      case "id":
        if (!value.includes("\u0000")) this.idBuffer = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.handlers.onRetry?.(Number.parseInt(value, 10));
        break;
      default:
        // Unknown fields are ignored.
        break;
    }
  }

  private dispatch(): void {
    this.lastEventId = this.idBuffer;
    if (!this.hasData) {
      this.eventType = "";
      return;
    }
    const event: SseEvent = {
      type: this.eventType === "" ? "message" : this.eventType,
      data: this.data,
      lastEventId: this.lastEventId,
    };
    this.data = "";
    this.hasData = false;
    this.eventType = "";
    this.handlers.onEvent(event);
  }
}
