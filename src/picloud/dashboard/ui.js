// Small DOM helpers. Everything from the server goes in as text nodes, never as HTML.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** el("tr", {class: "x", onclick: fn}, child, "text", …) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

/** A server timestamp in local time ("—" when missing). */
export function formatTime(value) {
  if (!value) return "—";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : timeFormat.format(date);
}

export function jsonBlock(value) {
  return el("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

/** Shows (or with null, hides) a form's error line. */
export function setFormError(form, err) {
  const line = form.querySelector(".form-error");
  if (!line) return;
  line.hidden = !err;
  line.textContent = err ? String(err) : "";
}

/** Asks in the page's own dialog; resolves true when the person confirms. */
export function confirmAction(question, confirmLabel = "Delete") {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = question;
  $("#confirm-ok").textContent = confirmLabel;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

/** A plain button: button("Retry", fn, {cls: "small", label: "Retry dead letter #3"}). */
export function button(text, onclick, { cls = "ghost small", label = null } = {}) {
  return el("button", { type: "button", class: cls, "aria-label": label, onclick }, text);
}
