// PiCloud operator dashboard: sign-in, Apps, Topics (with live tail), Deliveries and
// Dead letters. Plain ES modules, no build step; every API error is shown to the person.

import { ApiError, api, appPath, followStream, session } from "./api.js";
import { $, $$, button, confirmAction, el, formatTime, jsonBlock, setFormError } from "./ui.js";

const TAIL_LIMIT = 200;

const state = {
  apps: [],
  appId: null,
  tab: "apps",
  topics: [],
  stopTail: null,
  tailTopics: [], // the live tail's topics: one, or several on one stream
  tailPresence: {}, // topic -> {subject: info} on the tail's presence topics
};

// ---------------------------------------------------------------- messages

function showError(err) {
  const box = $("#error");
  $("#error-text").textContent = err instanceof ApiError ? err.toString() : String(err);
  box.hidden = false;
}

function clearError() {
  $("#error").hidden = true;
}

let noticeTimer = null;
function notice(text) {
  const box = $("#notice");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    box.hidden = true;
  }, 4000);
}

/** Runs an action; its error goes to the form's error line (or the banner). */
async function attempt(action, form = null) {
  if (form) setFormError(form, null);
  try {
    return await action();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      signOut("Your API key was refused (401). Sign in again.");
      return undefined;
    }
    if (form) setFormError(form, err);
    else showError(err);
    return undefined;
  }
}

// ---------------------------------------------------------------- sign-in

async function signIn(key, appId) {
  const form = $("#sign-in-form");
  setFormError(form, null);
  try {
    let apps;
    if (appId) {
      apps = [await scopedApp(appId, key)];
    } else {
      try {
        apps = (await api.get("/api/v1/apps", { key })).apps;
      } catch (err) {
        if (err instanceof ApiError && err.status === 403) {
          throw new ApiError(
            403,
            "forbidden",
            "This key is limited to one app: enter that app's id as well.",
          );
        }
        throw err;
      }
    }
    session.key = key;
    session.set("scopedApp", appId || null);
    state.apps = apps;
    enterConsole();
  } catch (err) {
    setFormError(form, err);
  }
}

function signOut(message) {
  stopTail();
  session.clear();
  state.apps = [];
  state.appId = null;
  $("#api-key").value = "";
  $("#console").hidden = true;
  $("#sign-out").hidden = true;
  $("#sign-in").hidden = false;
  clearError();
  if (message) setFormError($("#sign-in-form"), message);
  $("#api-key").focus();
}

function enterConsole() {
  $("#sign-in").hidden = true;
  $("#console").hidden = false;
  $("#sign-out").hidden = false;
  const wanted = session.get("app");
  state.appId = state.apps.some((a) => a.id === wanted) ? wanted : state.apps[0]?.id ?? null;
  renderAppPicker();
  const tab = location.hash.slice(1);
  showTab(["apps", "topics", "deliveries", "dead-letters"].includes(tab) ? tab : "apps");
}

// ---------------------------------------------------------------- apps

/** The one app of an app key. A key without app:admin may not read the app itself (403)
 *  yet still manage its topics or dead letters: the app is then shown by id. */
async function scopedApp(appId, key = session.key) {
  try {
    return await api.get(appPath(appId), { key });
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 403)) throw err;
    return { id: appId, slug: appId.slice(0, 8), name: "app details need app:admin" };
  }
}

async function loadApps() {
  const scoped = session.get("scopedApp");
  state.apps = scoped
    ? [await scopedApp(scoped)]
    : (await api.get("/api/v1/apps")).apps;
  if (!state.apps.some((a) => a.id === state.appId)) state.appId = state.apps[0]?.id ?? null;
  renderAppPicker();
}

function currentApp() {
  return state.apps.find((a) => a.id === state.appId) ?? null;
}

function renderAppPicker() {
  const select = $("#app-select");
  select.replaceChildren(
    ...state.apps.map((a) => el("option", { value: a.id }, `${a.slug} — ${a.name}`)),
  );
  if (!state.apps.length) select.append(el("option", { value: "" }, "(no apps yet)"));
  select.value = state.appId ?? "";
  session.set("app", state.appId);
  const app = currentApp();
  for (const span of $$(".app-name")) span.textContent = app ? `in ${app.slug}` : "";
}

function renderApps() {
  const body = $("#apps-table tbody");
  body.replaceChildren(
    ...state.apps.map((a) =>
      el(
        "tr",
        { "data-app": a.slug, class: a.id === state.appId ? "selected" : "" },
        el("td", { "data-label": "Slug" }, el("strong", {}, a.slug)),
        el("td", { "data-label": "Name" }, a.name),
        el("td", { "data-label": "Id" }, el("code", { class: "id" }, a.id)),
        el("td", { "data-label": "Created" }, formatTime(a.created_at)),
        el(
          "td",
          { class: "row-actions" },
          button(a.id === state.appId ? "Selected" : "Select", () => selectApp(a.id)),
        ),
      ),
    ),
  );
  $("#tab-apps .empty").hidden = state.apps.length > 0;
}

async function renderDomains() {
  const list = $("#domain-list");
  const form = $("#add-domain-form");
  const app = currentApp();
  form.hidden = !app;
  if (!app) {
    list.replaceChildren(el("li", { class: "muted" }, "Create an app first."));
    return;
  }
  const { domains } = await api.get(appPath(app.id, "domains"));
  list.replaceChildren(
    el("li", { class: "muted" }, `${app.slug}.<PICLOUD_BASE_DOMAIN> (always)`),
    ...domains.map((d) =>
      el(
        "li",
        {},
        el("code", {}, d.host),
        button("Remove", () => removeDomain(app, d.host), {
          cls: "ghost small danger-text",
          label: `Remove ${d.host}`,
        }),
      ),
    ),
  );
}

async function removeDomain(app, host) {
  if (!(await confirmAction(`Remove the domain ${host} from ${app.slug}?`, "Remove"))) return;
  await attempt(async () => {
    await api.del(appPath(app.id, "domains", host));
    notice(`Removed ${host}.`);
    await renderDomains();
  });
}

async function renderSigningKey() {
  const facts = $("#signing-key-facts");
  const form = $("#rotate-key-form");
  const app = currentApp();
  form.hidden = !app;
  if (!app) {
    facts.replaceChildren();
    return;
  }
  let key;
  try {
    key = await api.get(appPath(app.id, "signing-keys"));
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 403) throw err;
    form.hidden = true;
    facts.replaceChildren(el("dd", { class: "muted" }, "Rotation needs app:admin."));
    return;
  }
  const fact = (term, value) => [el("dt", {}, term), el("dd", {}, value)];
  facts.replaceChildren(
    ...fact(
      "Version",
      key.key_version == null ? "none yet (made by the first token)" : String(key.key_version),
    ),
    ...fact("Rotated", key.rotated_at ? formatTime(key.rotated_at) : "never"),
    ...fact(
      "Previous key valid until",
      key.previous_valid_until ? formatTime(key.previous_valid_until) : "—",
    ),
  );
}

async function rotateSigningKey(form) {
  const app = currentApp();
  const grace = Number(new FormData(form).get("grace_seconds"));
  const question =
    `Rotate the token signing key of ${app.slug}? Tokens signed by the current key stay ` +
    `valid for ${grace} seconds, older ones stop working now.`;
  if (!(await confirmAction(question, "Rotate key"))) return;
  await attempt(async () => {
    const rotated = await api.post(appPath(app.id, "signing-keys", "rotate"), {
      grace_seconds: grace,
    });
    notice(`${app.slug} now signs tokens with key version ${rotated.key_version}.`);
    await renderSigningKey();
  }, form);
}

async function refreshApps() {
  await loadApps();
  renderApps();
  await renderSigningKey();
  await renderDomains();
}

function selectApp(appId) {
  state.appId = appId || null;
  renderAppPicker();
  refreshTab();
}

// ---------------------------------------------------------------- topics

async function refreshTopics() {
  const app = currentApp();
  const body = $("#topics-table tbody");
  if (!app) {
    state.topics = [];
    body.replaceChildren();
  } else {
    state.topics = (await api.get(appPath(app.id, "topics"))).topics;
    body.replaceChildren(...state.topics.map((t) => topicRow(app, t)));
  }
  $("#tab-topics .empty").hidden = state.topics.length > 0;
  for (const select of $$(".topic-choice")) {
    const keep = select.value;
    select.replaceChildren(...state.topics.map((t) => el("option", { value: t.name }, t.name)));
    if (state.topics.some((t) => t.name === keep)) select.value = keep;
  }
}

function topicRow(app, topic) {
  const mode = el(
    "select",
    { "aria-label": `Auth mode of ${topic.name}`, class: "auth-mode" },
    el("option", { value: "token" }, "token"),
    el("option", { value: "public" }, "public"),
  );
  mode.value = topic.auth_mode;
  mode.addEventListener("change", () =>
    updateTopic(app, topic, { auth_mode: mode.value }, () => {
      mode.value = topic.auth_mode;
    }),
  );
  const external = el("input", {
    type: "checkbox",
    class: "external",
    "aria-label": `${topic.name} is subscribable from outside`,
  });
  external.checked = topic.external_subscribable;
  external.addEventListener("change", () =>
    updateTopic(app, topic, { external_subscribable: external.checked }, () => {
      external.checked = topic.external_subscribable;
    }),
  );
  const presence = el("input", {
    type: "checkbox",
    class: "presence",
    "aria-label": `${topic.name} tracks presence`,
  });
  presence.checked = Boolean(topic.presence);
  presence.addEventListener("change", () =>
    updateTopic(app, topic, { presence: presence.checked }, () => {
      presence.checked = Boolean(topic.presence);
    }),
  );
  return el(
    "tr",
    { "data-topic": topic.name },
    el("td", { "data-label": "Name" }, el("code", { class: "topic-name" }, topic.name)),
    el("td", { "data-label": "Auth mode" }, mode),
    el("td", { "data-label": "External" }, el("label", { class: "check" }, external, "external")),
    el("td", { "data-label": "Presence" }, el("label", { class: "check" }, presence, "presence")),
    el("td", { "data-label": "Updated" }, formatTime(topic.updated_at)),
    el(
      "td",
      { class: "row-actions" },
      button("Tail", () => startTail(topic.name)),
      button("+ Tail", () => addToTail(topic.name), { label: `Also follow ${topic.name}` }),
      button("Delete", () => deleteTopic(app, topic), {
        cls: "ghost small danger-text",
        label: `Delete ${topic.name}`,
      }),
    ),
  );
}

async function updateTopic(app, topic, change, revert) {
  const saved = await attempt(() => api.patch(appPath(app.id, "topics", topic.name), change));
  if (saved) {
    Object.assign(topic, saved);
    const { auth_mode: mode, external_subscribable: external, presence } = saved;
    notice(`Saved ${topic.name}: auth ${mode}, external ${external}, presence ${presence}.`);
  } else {
    revert();
  }
}

async function deleteTopic(app, topic) {
  const question =
    `Delete the topic ${topic.name}? ` +
    "Its history goes and live subscribers are disconnected.";
  if (!(await confirmAction(question, "Delete topic"))) return;
  await attempt(async () => {
    await api.del(appPath(app.id, "topics", topic.name));
    if (state.tailTopics.includes(topic.name)) stopTail();
    notice(`Deleted ${topic.name}.`);
    await refreshTopics();
  });
}

async function createTopic(form) {
  const app = currentApp();
  if (!app) return setFormError(form, "Create or select an app first.");
  const data = new FormData(form);
  const body = {
    name: data.get("name"),
    auth_mode: data.get("auth_mode"),
    external_subscribable: data.get("external_subscribable") === "on",
    presence: data.get("presence") === "on",
  };
  await attempt(async () => {
    const topic = await api.post(appPath(app.id, "topics"), body);
    notice(`Created ${topic.name}.`);
    form.reset();
    await refreshTopics();
  }, form);
}

async function publish(form) {
  const app = currentApp();
  const data = new FormData(form);
  const topic = data.get("topic");
  if (!app || !topic) return setFormError(form, "Create a topic first.");
  let message;
  try {
    message = JSON.parse(data.get("message"));
  } catch (err) {
    return setFormError(form, `The message is not valid JSON: ${err.message}`);
  }
  await attempt(async () => {
    const sent = await api.post(appPath(app.id, "topics", topic, "messages"), { message });
    $("#publish-result").textContent = `Published #${sent.id} at ${formatTime(sent.published_at)}`;
  }, form);
}

async function mintToken(form) {
  const app = currentApp();
  const data = new FormData(form);
  const topic = data.get("topic");
  const card = form.parentElement;
  if (!app || !topic) return setFormError(card, "Create a topic first.");
  await attempt(async () => {
    const publish = data.get("publish") === "on";
    const subject = String(data.get("subject") ?? "").trim();
    const minted = await api.post(appPath(app.id, "topics", topic, "tokens"), {
      ttl_seconds: Number(data.get("ttl_seconds")),
      ...(publish ? { publish: true } : {}),
      ...(subject ? { subject } : {}),
    });
    $("#token-value").textContent = minted.token;
    $("#token-expiry").textContent =
      `For ${topic} in ${app.slug}${publish ? " (may publish)" : ""}; ` +
      `expires ${formatTime(minted.expires_at)}.`;
    $("#token-result").hidden = false;
  }, card);
}

// ---------------------------------------------------------------- live tail

function setTailState(name, detail) {
  const pill = $("#tail-status");
  const labels = {
    idle: "idle",
    connecting: "connecting…",
    live: `live: ${state.tailTopics.join(", ")}`,
    retrying: "reconnecting…",
    closed: "stopped",
    failed: "failed",
  };
  pill.dataset.state = name;
  pill.textContent = labels[name] ?? name;
  const running = name === "connecting" || name === "live" || name === "retrying";
  $("#tail-start").disabled = running;
  $("#tail-stop").disabled = !running;
  const errorLine = $("#tail-error");
  if (detail) {
    errorLine.textContent = detail instanceof ApiError ? detail.toString() : String(detail);
    errorLine.hidden = false;
  } else if (name === "live") {
    errorLine.hidden = true;
  }
  if (name === "live") {
    // A (re)opened stream is told who is present anew.
    state.tailPresence = {};
    renderTailPresence();
  }
}

// The event id is an opaque resume cursor; this page reads it only to show a message's
// number. A single topic's is 'v1.<epoch>.<seq>'. A stream of several topics has one for
// all: 'v2m.' + base64url of a 4-byte fingerprint of the sorted topic set, then varints
// (7 bits a byte, low first): the smallest epoch, and per topic in sorted order its
// epoch's offset and its seq. (Older servers sent 'v1m.' + base64url of
// '<epoch>.<seq>.<topic>' entries joined by ','.) The message number of `topic` on a
// stream of `topics`, or "?".
function messageNumber(cursor, topic, topics) {
  const compact = cursor.startsWith("v2m.");
  if (!compact && !cursor.startsWith("v1m.")) return cursor.split(".").pop();
  try {
    const b64 = cursor.slice(4).replace(/-/g, "+").replace(/_/g, "/");
    const bytes = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    if (!compact) {
      for (const entry of bytes.split(",")) {
        const [, seq, ...name] = entry.split(".");
        if (name.join(".") === topic) return seq;
      }
      return "?";
    }
    const numbers = [];
    let value = 0n;
    let shift = 0n;
    for (let i = 4; i < bytes.length; i++) {
      const byte = BigInt(bytes.charCodeAt(i));
      value |= (byte & 0x7fn) << shift;
      if (byte & 0x80n) {
        shift += 7n;
      } else {
        numbers.push(value);
        value = 0n;
        shift = 0n;
      }
    }
    const sorted = [...topics].sort();
    const at = sorted.indexOf(topic);
    if (at >= 0 && numbers.length === 1 + 2 * sorted.length) return String(numbers[2 + 2 * at]);
  } catch {
    // not a cursor this page can read: show none
  }
  return "?";
}

function renderTailPresence() {
  const line = $("#tail-presence");
  const parts = Object.entries(state.tailPresence).map(
    ([topic, subjects]) => `${topic}: ${Object.keys(subjects).sort().join(", ") || "nobody"}`,
  );
  line.textContent = parts.length ? `Present — ${parts.join("; ")}` : "";
  line.hidden = parts.length === 0;
}

function tailPresenceEvent(ev) {
  let change;
  try {
    change = JSON.parse(ev.data);
  } catch {
    return el("li", { class: "gap" }, `Unreadable presence event: ${ev.data}`);
  }
  const subjects = { ...(state.tailPresence[change.topic] ?? {}) };
  if (change.event === "joined") subjects[change.subject] = change.info;
  else delete subjects[change.subject];
  state.tailPresence = { ...state.tailPresence, [change.topic]: subjects };
  renderTailPresence();
  const info = change.info === null || change.info === undefined ? "" : ` ${JSON.stringify(change.info)}`;
  return el(
    "li",
    { class: "presence", "data-subject": change.subject, "data-event": change.event },
    `${change.subject} ${change.event} ${change.topic}${info}`,
  );
}

function tailEvent(ev) {
  const list = $("#tail-list");
  let item;
  if (ev.event === "history_truncated") {
    item = el("li", { class: "gap" }, `Older messages were pruned: ${ev.data}`);
  } else if (ev.event === "reset") {
    item = el("li", { class: "gap" }, `The topic was created again; starting over: ${ev.data}`);
  } else if (ev.event === "presence") {
    item = tailPresenceEvent(ev);
  } else if (ev.data === "") {
    return; // a multiplexed stream's opening cursor: nothing to show
  } else {
    let frame;
    try {
      frame = JSON.parse(ev.data);
    } catch {
      frame = { message: ev.data };
    }
    // The event id is a resume cursor: show the message number (of its topic).
    const number = messageNumber(ev.id ?? "", frame.topic ?? "", state.tailTopics);
    const several = state.tailTopics.length > 1;
    item = el(
      "li",
      { "data-id": number, "data-topic": frame.topic ?? "" },
      el(
        "div",
        { class: "tail-meta" },
        el("strong", { class: "tail-id" }, `#${number}`),
        several ? el("code", { class: "tail-topic" }, frame.topic ?? "") : null,
        el("time", { datetime: frame.published_at ?? "" }, formatTime(frame.published_at)),
      ),
      jsonBlock(frame.message),
    );
  }
  list.prepend(item);
  while (list.children.length > TAIL_LIMIT) list.lastElementChild.remove();
}

function startTail(topic) {
  if (!topic) return;
  followTopics([topic]);
}

// Adds a topic to the running tail (one stream for all of them), or starts one.
function addToTail(topic) {
  if (!topic) return;
  const running = state.stopTail !== null;
  if (running && state.tailTopics.includes(topic)) return;
  followTopics(running ? [...state.tailTopics, topic] : [topic]);
}

function followTopics(topics) {
  const app = currentApp();
  if (!app) return;
  stopTail();
  $("#tail-list").replaceChildren();
  for (const select of $$(".topic-choice")) select.value = topics.at(-1);
  state.tailTopics = topics;
  const path =
    topics.length === 1
      ? appPath(app.id, "topics", topics[0], "stream")
      : `${appPath(app.id, "stream")}?${topics.map((t) => `topic=${encodeURIComponent(t)}`).join("&")}`;
  state.stopTail = followStream(path, { onEvent: tailEvent, onState: setTailState });
  $("#tail-form").scrollIntoView({ block: "nearest" });
}

function stopTail() {
  if (state.stopTail) {
    state.stopTail();
    state.stopTail = null;
  }
  state.tailPresence = {};
  renderTailPresence();
}

// ---------------------------------------------------------------- deliveries

function statusPill(status) {
  return el("span", { class: "pill", "data-state": status }, status);
}

async function refreshDeliveries() {
  const app = currentApp();
  const body = $("#deliveries-table tbody");
  $("#delivery-detail").hidden = true;
  if (!app) return body.replaceChildren();
  const data = new FormData($("#deliveries-filter"));
  const params = new URLSearchParams({ limit: "100" });
  for (const name of ["status", "source"]) if (data.get(name)) params.set(name, data.get(name));
  const { deliveries } = await api.get(`${appPath(app.id, "deliveries")}?${params}`);
  body.replaceChildren(
    ...deliveries.map((d) =>
      el(
        "tr",
        { "data-delivery": d.id },
        el("td", { "data-label": "Id" }, el("strong", {}, `#${d.id}`)),
        el("td", { "data-label": "Source" }, d.source ?? ""),
        el("td", { "data-label": "Subject", class: "wrap" }, el("code", {}, d.subject ?? "")),
        el("td", { "data-label": "Status" }, statusPill(d.status)),
        el("td", { "data-label": "Attempts" }, `${d.attempts ?? 0} / ${d.max_attempts ?? "?"}`),
        el("td", { "data-label": "Created" }, formatTime(d.created_at)),
        el("td", { "data-label": "Last error", class: "wrap" }, d.last_error ?? ""),
        el(
          "td",
          { class: "row-actions" },
          button("Inspect", () => inspectDelivery(app, d.id), {
            label: `Inspect delivery #${d.id}`,
          }),
        ),
      ),
    ),
  );
  $("#tab-deliveries .empty").hidden = deliveries.length > 0;
}

function attemptsTable(attempts) {
  if (!attempts || !attempts.length) return el("p", { class: "muted" }, "No attempts yet.");
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { class: "responsive attempts" },
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          ...["Attempt", "Started", "Finished", "Outcome", "Error"].map((h) => el("th", {}, h)),
        ),
      ),
      el(
        "tbody",
        {},
        ...attempts.map((a) =>
          el(
            "tr",
            {},
            el("td", { "data-label": "Attempt" }, String(a.attempt)),
            el("td", { "data-label": "Started" }, formatTime(a.started_at)),
            el("td", { "data-label": "Finished" }, formatTime(a.finished_at)),
            el("td", { "data-label": "Outcome" }, statusPill(a.outcome ?? "running")),
            el("td", { "data-label": "Error", class: "wrap" }, a.error ?? ""),
          ),
        ),
      ),
    ),
  );
}

function detailFacts(record, skip) {
  return el(
    "dl",
    { class: "facts" },
    ...Object.entries(record)
      .filter(([k, v]) => !skip.includes(k) && (v === null || typeof v !== "object"))
      .flatMap(([k, v]) => [
        el("dt", {}, k.replaceAll("_", " ")),
        el("dd", {}, k.endsWith("_at") ? formatTime(v) : String(v ?? "—")),
      ]),
  );
}

async function inspectDelivery(app, id) {
  await attempt(async () => {
    const d = await api.get(appPath(app.id, "deliveries", id));
    const card = $("#delivery-detail");
    card.replaceChildren(
      el("h2", {}, `Delivery #${d.id} `, statusPill(d.status)),
      detailFacts(d, ["event", "attempts"]),
      el("h3", {}, "Event"),
      jsonBlock(d.event),
      el("h3", {}, "Attempts"),
      attemptsTable(d.attempts),
    );
    card.hidden = false;
    card.scrollIntoView({ block: "nearest" });
  });
}

// ---------------------------------------------------------------- dead letters

async function refreshDeadLetters() {
  const app = currentApp();
  const body = $("#dead-letters-table tbody");
  $("#dead-letter-detail").hidden = true;
  if (!app) return body.replaceChildren();
  const source = new FormData($("#dead-letters-filter")).get("source");
  const params = new URLSearchParams(source ? { source } : {});
  const { dead_letters: rows } = await api.get(`${appPath(app.id, "dead-letters")}?${params}`);
  body.replaceChildren(
    ...rows.map((dl) =>
      el(
        "tr",
        { "data-dead-letter": dl.id },
        el("td", { "data-label": "Id" }, el("strong", {}, `#${dl.id}`)),
        el("td", { "data-label": "Source" }, dl.source ?? ""),
        el("td", { "data-label": "Subject", class: "wrap" }, el("code", {}, dl.subject ?? "")),
        el("td", { "data-label": "Failed" }, formatTime(dl.created_at)),
        el("td", { "data-label": "Last error", class: "wrap" }, dl.last_error ?? ""),
        el(
          "td",
          { "data-label": "Retried" },
          dl.retry_delivery_id ? `as delivery #${dl.retry_delivery_id}` : "—",
        ),
        el(
          "td",
          { class: "row-actions" },
          button("Inspect", () => inspectDeadLetter(app, dl.id), {
            label: `Inspect dead letter #${dl.id}`,
          }),
          button("Retry", () => retryDeadLetter(app, dl.id), {
            cls: "small",
            label: `Retry dead letter #${dl.id}`,
          }),
          button("Discard", () => discardDeadLetter(app, dl.id), {
            cls: "ghost small danger-text",
            label: `Discard dead letter #${dl.id}`,
          }),
        ),
      ),
    ),
  );
  $("#tab-dead-letters .empty").hidden = rows.length > 0;
}

async function inspectDeadLetter(app, id) {
  await attempt(async () => {
    const dl = await api.get(appPath(app.id, "dead-letters", id));
    // The attempts are the dead delivery's (it may be pruned by now).
    let attempts = el("p", { class: "muted" }, `Delivery #${dl.delivery_id} is no longer kept.`);
    try {
      const delivery = await api.get(appPath(app.id, "deliveries", dl.delivery_id));
      attempts = attemptsTable(delivery.attempts);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
    const card = $("#dead-letter-detail");
    card.replaceChildren(
      el("h2", {}, `Dead letter #${dl.id}`),
      detailFacts(dl, ["event"]),
      el("h3", {}, "Event"),
      jsonBlock(dl.event),
      el("h3", {}, `Attempts of delivery #${dl.delivery_id}`),
      attempts,
      el(
        "div",
        { class: "actions" },
        button("Retry", () => retryDeadLetter(app, dl.id), { cls: "" }),
        button("Discard", () => discardDeadLetter(app, dl.id), { cls: "ghost danger-text" }),
      ),
    );
    card.hidden = false;
    card.scrollIntoView({ block: "nearest" });
  });
}

async function retryDeadLetter(app, id) {
  await attempt(async () => {
    const path = appPath(app.id, "dead-letters", id, "retry");
    let retried;
    try {
      retried = await api.post(path, {});
    } catch (err) {
      if (!(err instanceof ApiError && err.code === "already_retried")) throw err;
      // Retried already: only on purpose a second time (force), after asking.
      const question = `Dead letter #${id} was already retried as delivery #${err.detail.delivery_id}. Retry it again?`;
      if (!(await confirmAction(question, "Retry again"))) return;
      retried = await api.post(`${path}?force=true`, {});
    }
    notice(`Dead letter #${id} re-enqueued as delivery #${retried.delivery_id}.`);
    await refreshDeadLetters();
  });
}

// A bulk retry works in batches of this many (one request, one transaction each).
const BULK_BATCH = 1000;

async function retryAllDeadLetters() {
  const app = currentApp();
  if (!app) return;
  await attempt(async () => {
    const source = new FormData($("#dead-letters-filter")).get("source") || undefined;
    const path = appPath(app.id, "dead-letters", "retry");
    // Count first, and fix the end of the set: later dead letters wait for the next time.
    const { matching, until } = await api.post(path, { source, dry_run: true });
    if (!matching) {
      notice("No dead letters to retry.");
      return;
    }
    const what = source ? ` of source ${source}` : "";
    const question = `Retry ${matching} dead letter${matching === 1 ? "" : "s"}${what} that ${matching === 1 ? "was" : "were"} not retried yet?`;
    if (!(await confirmAction(question, `Retry ${matching}`))) return;
    let done = 0;
    for (;;) {
      const batch = await api.post(path, { source, until, limit: BULK_BATCH });
      done += batch.retried;
      notice(`Retrying dead letters: ${done} of ${matching}…`);
      if (!batch.retried || !batch.remaining) break;
    }
    notice(`Retried ${done} dead letter${done === 1 ? "" : "s"}.`);
    await refreshDeadLetters();
  });
}

async function discardDeadLetter(app, id) {
  const question = `Discard dead letter #${id}? It cannot be retried afterwards.`;
  if (!(await confirmAction(question, "Discard"))) return;
  await attempt(async () => {
    await api.del(appPath(app.id, "dead-letters", id));
    notice(`Discarded dead letter #${id}.`);
    await refreshDeadLetters();
  });
}

// ---------------------------------------------------------------- tabs

const REFRESH = {
  apps: refreshApps,
  topics: refreshTopics,
  deliveries: refreshDeliveries,
  "dead-letters": refreshDeadLetters,
};

function showTab(name) {
  state.tab = name;
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  for (const button of $$(".tabs [role=tab]")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === name));
  }
  for (const panel of $$(".tab-panel")) panel.hidden = panel.id !== `tab-${name}`;
  refreshTab();
}

function refreshTab() {
  return attempt(REFRESH[state.tab]);
}

// ---------------------------------------------------------------- wiring

function onSubmit(selector, handler) {
  $(selector).addEventListener("submit", (event) => {
    event.preventDefault();
    handler(event.currentTarget);
  });
}

// The trigger sources are the server's list (picloud.event_sources()), not a copy here.
async function fillSources() {
  const { sources } = await api.get("/api/v1/trigger-sources", { key: null });
  for (const select of $$(".source-choice")) {
    select.replaceChildren(
      el("option", { value: "" }, "any"),
      ...sources.map((s) => el("option", { value: s }, s)),
    );
  }
}

function wire() {
  fillSources().catch(showError);
  onSubmit("#sign-in-form", (form) => {
    const data = new FormData(form);
    signIn(String(data.get("key")).trim(), String(data.get("app")).trim());
  });
  $("#sign-out").addEventListener("click", () => signOut());
  $("#error-close").addEventListener("click", clearError);
  for (const button of $$(".tabs [role=tab]")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
  $("#app-select").addEventListener("change", (event) => selectApp(event.target.value));
  $("#refresh").addEventListener("click", () => {
    clearError();
    refreshTab();
  });
  onSubmit("#create-app-form", (form) =>
    attempt(async () => {
      const data = new FormData(form);
      const body = { slug: data.get("slug"), name: data.get("name") };
      const app = await api.post("/api/v1/apps", body);
      notice(`Created app ${app.slug}.`);
      form.reset();
      state.appId = app.id;
      await refreshApps();
    }, form),
  );
  onSubmit("#add-domain-form", (form) =>
    attempt(async () => {
      const app = currentApp();
      const added = await api.post(appPath(app.id, "domains"), {
        host: new FormData(form).get("host"),
      });
      notice(`${added.host} now points at ${app.slug}.`);
      form.reset();
      await renderDomains();
    }, form),
  );
  onSubmit("#rotate-key-form", rotateSigningKey);
  onSubmit("#create-topic-form", createTopic);
  onSubmit("#publish-form", publish);
  onSubmit("#token-form", mintToken);
  onSubmit("#tail-form", (form) => startTail(new FormData(form).get("topic")));
  $("#tail-stop").addEventListener("click", stopTail);
  $("#tail-clear").addEventListener("click", () => $("#tail-list").replaceChildren());
  onSubmit("#deliveries-filter", () => attempt(refreshDeliveries));
  onSubmit("#dead-letters-filter", () => attempt(refreshDeadLetters));
  $("#retry-all-dead-letters").addEventListener("click", retryAllDeadLetters);
  window.addEventListener("pagehide", stopTail);
}

async function start() {
  wire();
  api
    .get("/version", { key: null })
    .then((v) => {
      $("#version").textContent = `dashboard ${v.dashboard} · server ${v.server}`;
    })
    .catch(showError);
  if (!session.key) {
    signOut();
    return;
  }
  try {
    await loadApps();
    enterConsole();
  } catch (err) {
    const refused = err instanceof ApiError && err.status === 401;
    signOut(refused ? "Your API key was refused." : String(err));
  }
}

start();
