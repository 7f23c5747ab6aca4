// The HTTP side of the dashboard: JSON calls to /api/v1 with the API key, and a
// Server-Sent Events reader over streaming fetch (EventSource cannot send the key).
// Events are parsed by the TypeScript client's parser (sse.js is generated from it).

import { SseParser } from "./sse.js";

const KEY_STORAGE = "picloud.apiKey";

export class ApiError extends Error {
  constructor(status, code, message, detail = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    // The error object's other fields (e.g. delivery_id of an already_retried 409).
    this.detail = detail;
  }

  toString() {
    return this.status ? `${this.status} ${this.code}: ${this.message}` : this.message;
  }
}

export const session = {
  get key() {
    return sessionStorage.getItem(KEY_STORAGE);
  },
  set key(value) {
    if (value) sessionStorage.setItem(KEY_STORAGE, value);
    else sessionStorage.removeItem(KEY_STORAGE);
  },
  get(name) {
    return sessionStorage.getItem(`picloud.${name}`);
  },
  set(name, value) {
    if (value) sessionStorage.setItem(`picloud.${name}`, value);
    else sessionStorage.removeItem(`picloud.${name}`);
  },
  clear() {
    for (const name of Object.keys(sessionStorage)) {
      if (name.startsWith("picloud.")) sessionStorage.removeItem(name);
    }
  },
};

async function errorFrom(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch {
    // Not JSON (a proxy's page, say): fall back to the status line.
  }
  const err = body && body.error;
  return new ApiError(
    resp.status,
    (err && err.code) || "http_error",
    (err && err.message) || `${resp.status} ${resp.statusText || "error"}`,
    err || {},
  );
}

/** Calls the API; resolves to the parsed JSON (null for 204), rejects with ApiError. */
export async function call(method, path, body, { key = session.key, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  const init = { method, headers, signal, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    throw new ApiError(0, "network", `Could not reach the server (${exc.message}).`);
  }
  if (!resp.ok) throw await errorFrom(resp);
  if (resp.status === 204) return null;
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

export const api = {
  get: (path, opts) => call("GET", path, undefined, opts),
  post: (path, body, opts) => call("POST", path, body ?? {}, opts),
  patch: (path, body, opts) => call("PATCH", path, body, opts),
  del: (path, opts) => call("DELETE", path, undefined, opts),
};

/** Path of an app-level resource, each segment escaped. */
export function appPath(appId, ...segments) {
  const rest = segments.map((s) => `/${encodeURIComponent(String(s))}`).join("");
  return `/api/v1/apps/${encodeURIComponent(appId)}${rest}`;
}

/**
 * Follows an SSE stream with the API key, resuming after the last id on reconnect
 * (1 s back-off doubling to 30 s). Returns a function that stops it.
 * Callbacks: onEvent({id, event, data}), onState(state, detail) with state in
 * connecting | live | retrying | closed | failed.
 */
export function followStream(path, { onEvent, onState }) {
  const controller = new AbortController();
  let lastId = "";
  let delay = 1000;
  let stopped = false;

  async function once() {
    const headers = { Accept: "text/event-stream", Authorization: `Bearer ${session.key}` };
    if (lastId !== "") headers["Last-Event-ID"] = lastId;
    const resp = await fetch(path, { headers, signal: controller.signal, cache: "no-store" });
    if (!resp.ok) throw await errorFrom(resp);
    onState("live");
    delay = 1000;
    const parser = new SseParser(
      {
        onEvent: (ev) => {
          lastId = ev.lastEventId;
          onEvent({ id: ev.lastEventId, event: ev.type, data: ev.data });
        },
      },
      lastId,
    );
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        parser.push(value);
      }
    } finally {
      // Resume after the last complete event, whether or not it carried data.
      lastId = parser.lastId;
    }
  }

  (async () => {
    while (!stopped) {
      onState("connecting");
      let problem = null;
      try {
        await once();
      } catch (exc) {
        if (stopped || exc.name === "AbortError") break;
        // Refusals are final: a missing topic, a revoked key or a lost capability.
        if (exc instanceof ApiError && exc.status >= 400 && exc.status < 500) {
          onState("failed", exc);
          return;
        }
        problem = exc;
      }
      if (stopped) break;
      onState("retrying", problem);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 30000);
    }
    onState("closed");
  })();

  return () => {
    stopped = true;
    controller.abort();
  };
}
