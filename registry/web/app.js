// The registry's page: repositories, a repository's tags, a manifest (a model's facts, or any artifact's
// manifest and layers). Each view is its own address (/, /r/<name>, /r/<name>:<tag>, /r/<name>@<digest>)
// and reads the page's JSON API; links are ordinary links.
import { copyable, h, shortDigest, size, time } from "./dom.js";

const PER_PAGE = 25;
const main = document.getElementById("main");

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function get(path) {
  const r = await fetch(path, { credentials: "same-origin", headers: { accept: "application/json" } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, body?.errors?.[0]?.message ?? `the registry answered ${r.status}`);
  return body;
}

async function post(path, json) {
  const r = await fetch(path, {
    method: "POST", credentials: "same-origin",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(json ?? {}),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, body?.errors?.[0]?.message ?? `the registry answered ${r.status}`);
  return body;
}

function repoHref(name, ref) {
  const path = `/r/${name.split("/").map(encodeURIComponent).join("/")}`;
  if (!ref) return path;
  return ref.includes(":") ? `${path}@${ref}` : `${path}:${encodeURIComponent(ref)}`;
}

function show(title, ...content) {
  document.title = title ? `${title} · mf registry` : "mf registry";
  main.replaceChildren(...content.flat().filter(Boolean));
}

function table(caption, heads, rows, empty) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c, i) => (i === 0 ? h("th", { scope: "row" }, c) : h("td", {}, c)))))));
}

// ---- account (sign-in with an API key) ----

async function account(info) {
  const box = document.getElementById("account");
  if (!info.accessControl) {
    box.replaceChildren();
    return;
  }
  if (info.signedIn) {
    box.replaceChildren(
      h("span", {}, "Signed in with API key ", h("strong", {}, info.signedIn)),
      h("button", { type: "button", onclick: async () => {
        await post("/ui/api/session/end");
        location.reload();
      } }, "Sign out"));
    return;
  }
  const input = h("input", { id: "api-key", name: "key", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const error = h("p", { id: "sign-in-error", class: "error", role: "alert" });
  const form = h("form", { class: "sign-in", "aria-label": "Sign in", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    try {
      await post("/ui/api/session", { key: input.value });
      location.reload();
    } catch (err) {
      input.value = "";
      error.textContent = err.status === 401 ? "That API key is not known to this registry." : `Sign-in failed: ${err.message}`;
    }
  } },
  h("label", { for: "api-key" }, "API key"), input, h("button", { type: "submit" }, "Sign in"), error);
  box.replaceChildren(form);
}

// ---- views ----

async function repositories(params) {
  const q = params.get("q") ?? "";
  const page = Math.max(1, Number(params.get("page")) || 1);
  const perPage = Math.min(100, Math.max(1, Number(params.get("per_page")) || PER_PAGE));
  const data = await get(`/ui/api/repositories?q=${encodeURIComponent(q)}&page=${page}&per_page=${perPage}`);
  const pages = Math.max(1, Math.ceil(data.total / data.perPage));
  const link = (p) => `/?${new URLSearchParams({ ...(q ? { q } : {}), ...(perPage !== PER_PAGE ? { per_page: String(perPage) } : {}), page: String(p) })}`;
  const search = h("form", { role: "search", action: "/", method: "get", class: "search" },
    h("label", { for: "q" }, "Search repositories"),
    perPage !== PER_PAGE ? h("input", { type: "hidden", name: "per_page", value: String(perPage) }) : null,
    h("input", { id: "q", name: "q", type: "search", value: q }),
    h("button", { type: "submit" }, "Search"));
  const count = `${data.total} ${data.total === 1 ? "repository" : "repositories"}${q ? ` matching “${q}”` : ""}`;
  show(q ? `Search: ${q}` : "Repositories",
    h("h1", {}, "Repositories"),
    search,
    h("p", { id: "count", role: "status" }, count),
    table("Repositories", ["Repository", "Tags", "Size", "Last push"],
      data.items.map((r) => [h("a", { href: repoHref(r.name) }, r.name), String(r.tags), size(r.size), time(r.lastPush)]),
      q ? "No repository you may see matches." : "No repositories you may see yet."),
    pages > 1 && h("nav", { "aria-label": "Pages", class: "pages" },
      page > 1 ? h("a", { href: link(page - 1), rel: "prev" }, "Previous") : h("span", { class: "muted" }, "Previous"),
      h("span", { "aria-current": "page" }, `Page ${page} of ${pages}`),
      page < pages ? h("a", { href: link(page + 1), rel: "next" }, "Next") : h("span", { class: "muted" }, "Next")));
}

async function repository(name) {
  const data = await get(`/ui/api/repository?name=${encodeURIComponent(name)}`);
  show(name,
    crumbs(name),
    h("h1", {}, name),
    table("Tags", ["Tag", "Digest", "Size", "Pushed", "Pushed by"],
      data.tags.map((t) => [
        h("a", { href: repoHref(name, t.tag) }, t.tag),
        shortDigest(t.digest),
        size(t.size),
        time(t.pushedAt),
        t.pusher ? h("code", {}, t.pusher) : h("span", { class: "muted" }, "not recorded"),
      ]),
      "No tags."));
}

function crumbs(name, ref) {
  return h("nav", { "aria-label": "Breadcrumb", class: "crumbs" },
    h("a", { href: "/" }, "Repositories"), " / ",
    ref ? h("a", { href: repoHref(name) }, name) : h("span", { "aria-current": "page" }, name),
    ref ? [" / ", h("span", { "aria-current": "page" }, ref)] : null);
}

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "").map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function block(title, text, open = false) {
  if (text === undefined || text === null || text === "") return null;
  return h("details", { open }, h("summary", {}, title), h("pre", { tabindex: "0" }, text));
}

function layersTable(caption, layers, name) {
  return table(caption, ["Media type", "Digest", "Size"],
    layers.map((l) => [h("code", {}, l.mediaType || "—"), name ? h("a", { href: repoHref(name, l.digest) }, shortDigest(l.digest)) : shortDigest(l.digest), size(l.size)]),
    "None.");
}

async function manifest(name, ref) {
  const m = await get(`/ui/api/manifest?name=${encodeURIComponent(name)}&ref=${encodeURIComponent(ref)}`);
  const label = ref.includes(":") ? `${ref.slice(0, 19)}…` : ref;
  const title = ref.includes(":") ? `${name}@${label}` : `${name}:${ref}`;
  const model = m.model;
  const kind = m.isModel ? "Model" : m.manifests.length ? "Index" : m.artifactType ? "Artifact" : "Image";
  const parts = [
    crumbs(name, label),
    h("h1", {}, title),
    h("p", { class: "kind" }, h("span", { class: "badge" }, kind), " ", h("code", { title: m.mediaType }, m.artifactType ?? m.mediaType)),
    h("section", { "aria-labelledby": "pull-h" }, h("h2", { id: "pull-h" }, "Pull"),
      copyable("mf", m.pull.mf), m.pull.ollama ? copyable("Ollama", m.pull.ollama) : null),
  ];
  if (model) {
    parts.push(h("section", { "aria-labelledby": "model-h" }, h("h2", { id: "model-h" }, "Model"),
      facts([
        ["Architecture", model.architecture],
        ["Parameters", model.parameterCount !== null ? `${model.parameterSize} (${model.parameterCount.toLocaleString("en")})` : model.parameterSize],
        ["Quantisation", model.quantization],
        ["Context length", model.contextLength !== null ? model.contextLength.toLocaleString("en") : null],
        ["Format", model.format],
        ["Digest", h("code", {}, m.digest)],
        ["Total size", size(m.totalSize)],
      ]),
      model.headerError ? h("p", { class: "error" }, `The GGUF header could not be read: ${model.headerError}`) : null,
      block("Template", model.template, true),
      block("System", model.system, true),
      block("Parameters", model.parametersText, true),
      model.licenses.map((l, i) => block(model.licenses.length > 1 ? `Licence ${i + 1}` : "Licence", l)),
      model.messages.length ? h("details", {}, h("summary", {}, `Messages (${model.messages.length})`),
        h("ol", { class: "messages" }, model.messages.map((x) => h("li", {}, h("strong", {}, x.role), " ", h("span", {}, x.content))))) : null,
      block("Modelfile", model.modelfile)));
  } else {
    if (m.modelError) parts.push(h("p", { class: "error" }, `The model's details could not be read: ${m.modelError}`));
    parts.push(h("section", { "aria-labelledby": "about-h" }, h("h2", { id: "about-h" }, "About"),
      facts([
        ["Digest", h("code", {}, m.digest)],
        ["Media type", h("code", {}, m.mediaType)],
        ["Artifact type", m.artifactType ? h("code", {}, m.artifactType) : null],
        ["Subject", m.subject ? h("a", { href: repoHref(name, m.subject.digest) }, shortDigest(m.subject.digest)) : null],
        ["Total size", size(m.totalSize)],
      ])));
  }
  parts.push(h("section", { "aria-labelledby": "layers-h" }, h("h2", { id: "layers-h" }, "Layers"),
    m.config ? h("p", {}, "Config: ", h("code", {}, m.config.mediaType), " · ", shortDigest(m.config.digest), " · ", size(m.config.size)) : null,
    layersTable("Layers", m.layers),
    m.manifests.length ? [h("h3", {}, "Manifests"), layersTable("Manifests of the index", m.manifests, name)] : null));
  parts.push(h("section", { "aria-labelledby": "ref-h" }, h("h2", { id: "ref-h" }, "Referrers"),
    table("Referrers (signatures and other artifacts about this one)", ["Artifact type", "Digest", "Size"],
      m.referrers.map((r) => [h("code", {}, r.artifactType ?? r.mediaType), h("a", { href: repoHref(name, r.digest) }, shortDigest(r.digest)), size(r.size)]),
      "No referrers.")));
  parts.push(h("section", { "aria-labelledby": "manifest-h" }, h("h2", { id: "manifest-h" }, "Manifest"), block("Manifest JSON", m.text)));
  show(title, parts);
}

function failure(err, name) {
  if (err.status === 404 && name) {
    show("Not found or access denied",
      crumbs(name),
      h("h1", {}, "Not found or access denied"),
      h("p", { role: "alert" }, err.message),
      h("p", {}, "If it exists, sign in with an API key that may pull it."));
    return;
  }
  show("Error", h("h1", {}, "Something went wrong"), h("p", { role: "alert" }, err.message));
}

/** "/r/a/b:tag" → { name: "a/b", ref: "tag" }; "/r/a/b@sha256:…" → ref the digest; "/r/a/b" → no ref. */
function route(pathname) {
  if (!pathname.startsWith("/r/")) return null;
  const rest = decodeURIComponent(pathname.slice(3));
  const at = rest.indexOf("@");
  if (at >= 0) return { name: rest.slice(0, at), ref: rest.slice(at + 1) };
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) return { name: rest.slice(0, colon), ref: rest.slice(colon + 1) };
  return { name: rest };
}

async function start() {
  let r;
  try {
    const info = await get("/ui/api/info");
    await account(info);
    r = route(location.pathname);
    if (!r) await repositories(new URLSearchParams(location.search));
    else if (r.ref) await manifest(r.name, r.ref);
    else await repository(r.name);
  } catch (err) {
    failure(err, r?.name);
  }
  document.body.dataset.ready = "true";
}

start();
