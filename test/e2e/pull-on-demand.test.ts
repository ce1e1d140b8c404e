/**
 * Pull on demand, end to end with real processes: a `mf registry serve` with an access file (anonymous
 * pull of `team/*`, `private/*` for an API key), reached through a small HTTP proxy in this test that
 * counts manifest GETs and can hold blob bytes (a registry as slow as the test wants); models pushed to it
 * by `mf push`; two `mf serve --registry http://PROXY` over stores that lack them, answering with the real
 * engine on a fixture GGUF.
 */
import { strict as assert } from "node:assert";
import { copyFile, mkdir, rm, writeFile } from "node:fs/promises";
import { type IncomingMessage, type Server, type ServerResponse, createServer, request as httpRequest } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildFromModelfile } from "../../builder/build.js";
import { parseRef } from "../../core/reference.js";
import { LocalStore } from "../../core/store.js";
import { MF_BIN, type MfServe, mf, startMfServe } from "../helpers/mf.js";
import { spawnMfRegistry, tempDir, type SpawnedRegistry } from "../registry/peers.js";
import { CHAT_MODELFILE, tinyGguf } from "../runtime/harness.js";

/** An HTTP proxy to a registry: counts the manifest GETs the registry answered (not its 401 challenges), and holds blob GETs while `hold` is set. */
interface RegistryProxy {
  host: string;
  base: string;
  hold: boolean;
  /** blob GETs waiting for `release` */
  held: number;
  /** requests of any kind seen */
  requests: number;
  manifestGets(repo: string): number;
  release(): void;
  setTarget(port: number): void;
  close(): Promise<void>;
}

async function startProxy(): Promise<RegistryProxy> {
  let target = 0;
  let waiting: (() => void)[] = [];
  const manifests = new Map<string, number>();
  const state = {
    host: "",
    base: "",
    hold: false,
    held: 0,
    requests: 0,
    manifestGets: (repo: string) => manifests.get(repo) ?? 0,
    release() {
      state.hold = false;
      for (const w of waiting.splice(0)) w();
    },
    setTarget(port: number) {
      target = port;
    },
    close: async () => {
      state.release();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    state.requests++;
    const path = req.url ?? "/";
    const manifest = req.method === "GET" ? /^\/v2\/(.+)\/manifests\/[^/]+$/.exec(path.split("?")[0]!) : null;
    const blob = req.method === "GET" && /\/blobs\//.test(path);
    const up = httpRequest({ host: "127.0.0.1", port: target, method: req.method, path, headers: req.headers }, async (answer) => {
      if (manifest && answer.statusCode !== 401) manifests.set(manifest[1]!, state.manifestGets(manifest[1]!) + 1);
      if (blob && state.hold) {
        state.held++;
        await new Promise<void>((r) => waiting.push(r));
        state.held--;
      }
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as { port: number }).port;
  state.host = `127.0.0.1:${port}`;
  state.base = `http://${state.host}`;
  return state;
}

interface Answer {
  status: number;
  json: any;
  headers: Headers;
}

async function post(serve: MfServe, path: string, body: unknown): Promise<Answer> {
  const res = await fetch(`http://${serve.host}${path}`, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers };
}

/** Waits for `ok`; gives up (failing the test, not hanging it) after a minute. */
const until = async (ok: () => boolean, what: string) => {
  const giveUp = Date.now() + 60_000;
  while (!ok()) {
    if (Date.now() > giveUp) throw new Error(`gave up waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

const generate = (model: string) => ({ model, prompt: "hello", stream: false, options: { num_predict: 3 } });
const chat = (model: string) => ({ model, messages: [{ role: "user", content: "hello" }], stream: false, options: { num_predict: 3 } });
const openaiChat = (model: string) => ({ model, messages: [{ role: "user", content: "hello" }], max_tokens: 3 });
const anthropic = (model: string) => ({ model, max_tokens: 3, messages: [{ role: "user", content: "hello" }] });

describe("mf serve --registry: pull on demand", () => {
  let dir: string;
  let proxy: RegistryProxy;
  let reg: SpawnedRegistry;
  let open: MfServe; // anonymous, the default --pull-timeout
  let quick: MfServe; // `mf login`ed, --pull-timeout 1s, with a local model
  let name: (repo: string) => string;

  before(async () => {
    dir = await tempDir("mf-on-demand-");
    proxy = await startProxy();
    name = (repo) => `${proxy.host}/${repo}:v1`;
    const admin = { MF_HOME: join(dir, "admin"), MF_MODELS: join(dir, "src") };
    const key = await mf(["key"], { env: admin });
    assert.equal(key.code, 0, key.stderr);
    const access = join(dir, "access.yaml");
    await writeFile(access, `anonymous:\n  "team/*": [pull]\nkeys:\n  - key: ${key.stdout.trim()}\n    access:\n      "**": [pull, push]\n`);
    const add = await mf(["registry", "key", "add", "ci", "--access", access, "--allow", "private/*=pull"], { env: admin });
    assert.equal(add.code, 0, add.stderr);
    const secret = add.stdout.trim();
    // the token realm is the proxy's URL: every request of the clients goes through it
    reg = await spawnMfRegistry(join(dir, "registry"), ["--access", access, "--public-url", proxy.base], 30_000, { entry: MF_BIN });
    proxy.setTarget(Number(new URL(reg.base).port));

    const ctx = join(dir, "ctx");
    await mkdir(ctx, { recursive: true });
    await copyFile(await tinyGguf(), join(ctx, "tiny.gguf"));
    const build = async (storeDir: string, tag: string, system: string) => {
      await writeFile(join(ctx, "Modelfile"), CHAT_MODELFILE.replace('SYSTEM """You are a test."""', `SYSTEM """${system}"""`));
      await buildFromModelfile(join(ctx, "Modelfile"), { store: new LocalStore(storeDir), tags: [parseRef(tag)], contextDir: ctx, homeDir: dir });
    };
    for (const repo of ["team/tiny", "team/two", "team/slow", "private/model"]) {
      await build(admin.MF_MODELS, name(repo), `You are ${repo}.`);
      const push = await mf(["push", "--insecure", "-q", name(repo)], { env: admin });
      assert.equal(push.code, 0, push.stderr);
    }

    const openEnv = { HOME: dir, MF_HOME: join(dir, "open"), MF_MODELS: join(dir, "open", "models") };
    open = await startMfServe(["--no-gpu", "--threads", "1", "--registry", proxy.base], openEnv);
    const quickEnv = { HOME: dir, MF_HOME: join(dir, "quick"), MF_MODELS: join(dir, "quick", "models") };
    await build(quickEnv.MF_MODELS, "local/here:v1", "You are local.");
    const login = await mf(["login", proxy.host, "--insecure"], { env: quickEnv, input: `${secret}\n` });
    assert.equal(login.code, 0, login.stderr);
    // the registry and the timeout from the environment, as a deployment sets them
    quick = await startMfServe(["--no-gpu", "--threads", "1"], { ...quickEnv, MF_REGISTRY: proxy.base, MF_PULL_TIMEOUT: "1s" });
  });

  after(async () => {
    await open?.stop();
    await quick?.stop();
    await proxy?.close();
    if (reg) {
      reg.child.kill("SIGTERM");
      await reg.exited;
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("a generate naming a model of the registry that the store lacks pulls it, then answers; chat then uses the local copy", async () => {
    const r = await post(open, "/api/generate", generate(name("team/tiny")));
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.done, true);
    assert.equal(typeof r.json.response, "string");
    assert.ok(r.json.eval_count > 0);
    const c = await post(open, "/api/chat", chat(name("team/tiny")));
    assert.equal(c.status, 200, JSON.stringify(c.json));
    assert.equal(c.json.message.role, "assistant");
    assert.equal(proxy.manifestGets("team/tiny"), 1, "pulled once, then served from the store");
    const tags = (await (await fetch(`http://${open.host}/api/tags`)).json()) as { models: { name: string }[] };
    assert.ok(tags.models.some((m) => m.name === name("team/tiny")));
    assert.match(open.output(), /pulling 127\.0\.0\.1:\d+\/team\/tiny:v1 from http:\/\/127\.0\.0\.1:\d+ on demand/);
    assert.match(open.output(), /pulled 127\.0\.0\.1:\d+\/team\/tiny:v1 on demand/);
  });

  it("two concurrent requests for a missing model share one pull", async () => {
    proxy.hold = true;
    const a = post(open, "/api/chat", chat(name("team/two")));
    const b = post(open, "/api/generate", generate(name("team/two")));
    try {
      // the pull is under way (a blob held) and the second request waits on it
      await until(() => proxy.held > 0 && /request for \S+team\/two:v1 waits for its running pull/.test(open.output()), "the second request joining the running pull");
    } finally {
      proxy.release();
    }
    const [ra, rb] = await Promise.all([a, b]);
    assert.equal(ra.status, 200, JSON.stringify(ra.json));
    assert.equal(rb.status, 200, JSON.stringify(rb.json));
    assert.equal(proxy.manifestGets("team/two"), 1);
  });

  it("a name of another host is Ollama's 404, and the registry is not asked", async () => {
    const before = proxy.requests;
    for (const model of ["registry.example.com/team/tiny:v1", "tiny"]) {
      const r = await post(open, "/api/generate", generate(model));
      assert.equal(r.status, 404);
      assert.deepEqual(r.json, { error: `model "${model}" not found, try pulling it first` });
    }
    const o = await post(open, "/v1/chat/completions", openaiChat("tiny"));
    assert.equal(o.status, 404);
    assert.equal(o.json.error.type, "not_found_error");
    assert.equal(proxy.requests, before);
  });

  it("a name the registry lacks is a 404 in each API's own shape, and is not asked again at once", async () => {
    const model = name("team/absent");
    const native = await post(open, "/api/chat", chat(model));
    assert.equal(native.status, 404);
    assert.match(native.json.error, /^model "127\.0\.0\.1:\d+\/team\/absent:v1" not found: http:\/\/127\.0\.0\.1:\d+ does not have it/);
    const show = await post(open, "/api/show", { model });
    assert.equal(show.status, 404);
    assert.equal(typeof show.json.error, "string");
    const o = await post(open, "/v1/chat/completions", openaiChat(model));
    assert.equal(o.status, 404);
    assert.equal(o.json.error.type, "not_found_error");
    assert.equal(o.json.error.code, "model_not_found");
    assert.match(o.json.error.message, /not found/);
    const m = await post(open, "/v1/messages", anthropic(model));
    assert.equal(m.status, 404);
    assert.equal(m.json.type, "error");
    assert.equal(m.json.error.type, "not_found_error");
    assert.equal(proxy.manifestGets("team/absent"), 1, "the failure is remembered for a while");
  });

  it("a registry's refusal (no credentials for private/*) is a 403 with its reason, not a 500", async () => {
    const r = await post(open, "/api/generate", generate(name("private/model")));
    assert.equal(r.status, 403, JSON.stringify(r.json));
    assert.match(r.json.error, /refused the pull/);
    const o = await post(open, "/v1/chat/completions", openaiChat(name("private/model")));
    assert.equal(o.status, 403);
    assert.equal(o.json.error.type, "permission_error");
  });

  it("past --pull-timeout: a 503 with Retry-After in each API's shape while the pull goes on; local models answer; /api/ps lists only loaded ones; a later request gets the model", async () => {
    proxy.hold = true;
    const model = name("team/slow");
    try {
    const native = await post(quick, "/api/generate", generate(model));
    assert.equal(native.status, 503);
    assert.match(native.headers.get("retry-after") ?? "", /^[1-9]\d*$/);
    assert.match(native.json.error, /^model "127\.0\.0\.1:\d+\/team\/slow:v1" is being pulled from http:\/\/127\.0\.0\.1:\d+/);
    const o = await post(quick, "/v1/chat/completions", openaiChat(model));
    assert.equal(o.status, 503);
    assert.match(o.headers.get("retry-after") ?? "", /^[1-9]\d*$/);
    assert.match(o.json.error.message, /is being pulled/);
    const m = await post(quick, "/v1/messages", anthropic(model));
    assert.equal(m.status, 503);
    assert.match(m.headers.get("retry-after") ?? "", /^[1-9]\d*$/);
    assert.equal(m.json.type, "error");
    assert.match(m.json.error.message, /is being pulled/);

    // the pull is still held, and a model the store has answers meanwhile
    assert.ok(proxy.held > 0);
    const local = await post(quick, "/api/generate", generate("local/here:v1"));
    assert.equal(local.status, 200, JSON.stringify(local.json));
    assert.ok(proxy.held > 0, "the pull was still running");
    const ps = (await (await fetch(`http://${quick.host}/api/ps`)).json()) as { models: { name: string }[] };
    assert.deepEqual(ps.models.map((x) => x.name), ["local/here:v1"]);
    } finally {
      proxy.release();
    }
    let later: Answer | undefined;
    for (let i = 0; i < 60 && later?.status !== 200; i++) later = await post(quick, "/api/generate", generate(model));
    assert.equal(later?.status, 200, JSON.stringify(later?.json));
    assert.equal(proxy.manifestGets("team/slow"), 1, "the later requests joined the one pull or found it done");
  });

  it("with access control on the registry, the API key stored by `mf login` is used", async () => {
    let r: Answer | undefined;
    for (let i = 0; i < 60 && (r === undefined || r.status === 503); i++) r = await post(quick, "/api/generate", generate(name("private/model")));
    assert.equal(r?.status, 200, JSON.stringify(r?.json));
  });
});

describe("mf serve --registry: its settings are checked before it starts", () => {
  it("a URL that is not a registry's base, or a pull timeout of zero, is a usage message and exit 1", async () => {
    const dir = await tempDir("mf-on-demand-args-");
    try {
      const env = { HOME: dir, MF_HOME: join(dir, "home"), MF_MODELS: join(dir, "models"), MF_HOST: "127.0.0.1:0" };
      const scheme = await mf(["serve", "--registry", "ftp://models.example.com"], { env });
      assert.equal(scheme.code, 1);
      assert.equal(scheme.stderr, "mf: --registry ftp://models.example.com: use an http:// or https:// URL\n");
      const path = await mf(["serve", "--no-gpu"], { env: { ...env, MF_REGISTRY: "https://models.example.com/team" } });
      assert.equal(path.code, 1);
      assert.match(path.stderr, /^mf: --registry https:\/\/models\.example\.com\/team: give the registry's base URL only/);
      const zero = await mf(["serve", "--registry", "http://127.0.0.1:5000", "--pull-timeout", "0s"], { env });
      assert.equal(zero.code, 1);
      assert.match(zero.stderr, /^mf: --pull-timeout 0s: give a duration above zero/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
