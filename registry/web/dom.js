// Small DOM helpers: every text goes in through textContent, never as HTML.

/** h("a", { href: "/" }, "text", child…): an element with attributes and children (strings, nodes, arrays, null). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Bytes in decimal units, as Ollama prints sizes ("4.7 GB"). */
export function size(n) {
  if (typeof n !== "number") return "—";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** A time (ms since the epoch) as "2026-01-15 10:03 UTC", in a <time> element. */
export function time(ms) {
  if (typeof ms !== "number") return h("span", { class: "muted" }, "—");
  const iso = new Date(ms).toISOString();
  return h("time", { datetime: iso }, `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`);
}

/** The start of a digest, with the whole one in its title. */
export function shortDigest(d) {
  const [alg, hex] = String(d).split(":");
  return h("code", { title: d }, `${alg}:${(hex ?? "").slice(0, 12)}`);
}

/** A read-only field holding a command, with a button that copies it. */
export function copyable(label, text) {
  const id = `cmd-${Math.random().toString(36).slice(2, 8)}`;
  const input = h("input", { id, type: "text", readonly: true, value: text, class: "cmd", spellcheck: "false" });
  const status = h("span", { class: "copied", role: "status" });
  const button = h("button", { type: "button", "aria-label": `Copy ${label}` , onclick: async () => {
    input.select();
    try {
      await navigator.clipboard.writeText(text);
      status.textContent = "Copied";
    } catch {
      status.textContent = "Selected: press Ctrl+C to copy";
    }
  } }, "Copy");
  return h("div", { class: "copy" }, h("label", { for: id }, label), h("div", { class: "copy-row" }, input, button, status));
}
