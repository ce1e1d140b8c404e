/** `mf serve`, `mf run`, `mf ps`, `mf stop` as processes of the built binary (`npm test` builds it first). */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { buildFromModelfile } from "../../builder/build.js";
import { parseRef } from "../../core/reference.js";
import { LocalStore } from "../../core/store.js";
import { MF_BIN, ROOT, type MfResult, type MfServe, mf as runMf, mfEnv, runProcess, startMfServe } from "../helpers/mf.js";
import { CHAT_MODELFILE, tinyGguf } from "./harness.js";

let dir: string;
let serve: MfServe | undefined;
let host = "";

function env(extra: Record<string, string> = {}): Record<string, string> {
  return { HOME: dir, MF_HOME: join(dir, "home"), MF_MODELS: join(dir, "models"), ...extra };
}

function mf(args: string[], input = "", extra: Record<string, string> = {}): Promise<MfResult> {
  return runMf(args, { env: env({ MF_HOST: host, ...extra }), input });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mf-cli-serve-"));
  const ctx = join(dir, "ctx");
  await mkdir(ctx, { recursive: true });
  await copyFile(await tinyGguf(), join(ctx, "tiny.gguf"));
  await writeFile(join(ctx, "Modelfile"), CHAT_MODELFILE);
  await buildFromModelfile(join(ctx, "Modelfile"), { store: new LocalStore(join(dir, "models")), tags: [parseRef("chat")], contextDir: ctx, homeDir: dir });
  // another image on the same GGUF (its own manifest and digest)
  await writeFile(join(ctx, "Twin.Modelfile"), CHAT_MODELFILE.replace('SYSTEM """You are a test."""', 'SYSTEM """You are the twin."""'));
  await buildFromModelfile(join(ctx, "Twin.Modelfile"), { store: new LocalStore(join(dir, "models")), tags: [parseRef("twin")], contextDir: ctx, homeDir: dir });
  // the address, keep_alive and extra origins come from the environment (core/config), not flags
  serve = await startMfServe(["--no-gpu", "--threads", "1"], env({ MF_KEEP_ALIVE: "7m", MF_ORIGINS: "https://app.example.com" }));
  host = serve.host;
});

after(async () => {
  await serve?.stop();
  await rm(dir, { recursive: true, force: true });
});

test("mf run with a prompt streams an answer; ps shows the model; stop unloads it", async () => {
  const r = await mf(["run", "chat", "hello", "--verbose"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /eval count:\s+\d+ token\(s\)/);
  const ps = await mf(["ps"]);
  assert.equal(ps.code, 0, ps.stderr);
  assert.match(ps.stdout, /^NAME\s+ID\s+SIZE\s+PROCESSOR\s+CONTEXT\s+UNTIL\nchat:latest\s+[0-9a-f]{12}\s+.*100% CPU\s+512\s+7 minutes from now/);
  const stop = await mf(["stop", "chat"]);
  assert.equal(stop.code, 0, stop.stderr);
  assert.doesNotMatch((await mf(["ps"])).stdout, /chat:latest/);
});

test("models on one GGUF: mf ps and /api/ps show each name asked for; mf stop says when a model is not loaded, or unknown", async () => {
  const load = async (model: string) => assert.equal((await fetch(`http://${host}/api/generate`, { method: "POST", body: JSON.stringify({ model }) })).status, 200);
  const psNames = async () => ((await (await fetch(`http://${host}/api/ps`)).json()) as { models: { name: string; digest: string }[] }).models;
  await load("chat");
  // twin exists and its weights are loaded, but not as twin: nothing to stop, and chat stays
  const notLoaded = await mf(["stop", "twin"]);
  assert.equal(notLoaded.code, 0, notLoaded.stderr);
  assert.equal(notLoaded.stdout, 'model "twin" is not loaded\n');
  assert.deepEqual((await psNames()).map((m) => m.name), ["chat:latest"]);
  await load("twin");
  const loaded = await psNames();
  assert.deepEqual(loaded.map((m) => m.name).sort(), ["chat:latest", "twin:latest"]);
  assert.notEqual(loaded[0]!.digest, loaded[1]!.digest, "each name with its own image's digest");
  const ps = await mf(["ps"]);
  assert.equal(ps.code, 0, ps.stderr);
  assert.match(ps.stdout, /^chat:latest\s/m);
  assert.match(ps.stdout, /^twin:latest\s/m);
  const unknown = await mf(["stop", "nope"]);
  assert.equal(unknown.code, 1);
  assert.equal(unknown.stderr, 'mf: couldn\'t find model "nope" to stop\n');
  // the names share the weights: stopping one unloads them
  const stop = await mf(["stop", "twin:latest"]);
  assert.equal(stop.code, 0, stop.stderr);
  assert.equal(stop.stdout, "");
  assert.deepEqual(await psNames(), []);
});

test("mf serve takes MF_ORIGINS from the environment", async () => {
  const ok = await fetch(`http://${host}/api/version`, { headers: { origin: "https://app.example.com" } });
  assert.equal(ok.headers.get("access-control-allow-origin"), "https://app.example.com");
  assert.equal((await fetch(`http://${host}/api/version`, { headers: { origin: "https://other.example.com" } })).status, 403);
});

test("mf run without a prompt chats: history, /set parameter, /show, multi-line, /bye", async () => {
  const input = ['/set parameter num_predict 3', '/set parameter temperature hot', '/show', 'first', '"""two', 'lines"""', '/bye', ''].join("\n");
  const r = await mf(["run", "chat", "--interactive"], input);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Set parameter 'num_predict' to '3'/);
  assert.match(r.stdout, /Couldn't set parameter/);
  assert.match(r.stdout, /Parameters\n\s+num_ctx\s+512/);
});

test("mf run tells how to start a server when none is reachable; unknown models are errors", async () => {
  const none = await mf(["run", "chat", "hi"], "", { MF_HOST: "127.0.0.1:9" });
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no server at http:\/\/127\.0\.0\.1:9: start one with `mf serve`/);
  const missing = await mf(["run", "nope", "hi"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /model "nope" not found/);
});

test("mf run sends what an Ollama client would: the history, multi-line input, /set parameter and /set system", async () => {
  // a stand-in server that records the requests mf run makes and answers "A1", "A2", …
  const { createServer } = await import("node:http");
  const seen: { path: string; body: any }[] = [];
  let answers = 0;
  const fake = createServer((req, res) => {
    let text = "";
    req.on("data", (d) => (text += d));
    req.on("end", () => {
      const body = text ? JSON.parse(text) : undefined;
      seen.push({ path: req.url!, body });
      if (req.url === "/") return res.end("Ollama is running");
      if (req.url === "/api/chat") {
        const a = `A${++answers}`;
        res.setHeader("content-type", "application/x-ndjson");
        return res.end(`${JSON.stringify({ message: { role: "assistant", content: a }, done: false })}\n${JSON.stringify({ message: { role: "assistant", content: "" }, done: true })}\n`);
      }
      if (req.url === "/api/generate" && body.prompt) return res.end(`${JSON.stringify({ response: "ok", done: false })}\n${JSON.stringify({ response: "", done: true })}\n`);
      res.setHeader("content-type", "application/json");
      res.end(req.url === "/api/show" ? JSON.stringify({ details: { family: "llama" }, parameters: "", system: "" }) : "{}");
    });
  });
  await new Promise<void>((r) => fake.listen(0, "127.0.0.1", r));
  const at = `127.0.0.1:${(fake.address() as { port: number }).port}`;
  try {
    const input = ["/set parameter num_predict 3", "first", '"""two', "lines", '"""', "/set system Be brief.", "third", "/bye", "after bye"].join("\n");
    const r = await mf(["run", "m", "--interactive", "--keepalive", "1m"], input, { MF_HOST: at });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /A1\n\n[\s\S]*A2\n\n[\s\S]*A3\n\n/);
    assert.deepEqual(seen.find((x) => x.path === "/api/generate")?.body, { model: "m", keep_alive: "1m" }, "the model is loaded first");
    const chats = seen.filter((x) => x.path === "/api/chat").map((x) => x.body);
    assert.equal(chats.length, 3, "nothing is sent after /bye");
    for (const c of chats) {
      assert.equal(c.model, "m");
      assert.deepEqual(c.options, { num_predict: 3 });
      assert.equal(c.keep_alive, "1m");
    }
    assert.deepEqual(chats[0].messages, [{ role: "user", content: "first" }]);
    assert.deepEqual(chats[1].messages, [
      { role: "user", content: "first" },
      { role: "assistant", content: "A1" },
      { role: "user", content: "two\nlines\n" },
    ]);
    assert.deepEqual(chats[2].messages, [
      { role: "system", content: "Be brief." },
      { role: "user", content: "first" },
      { role: "assistant", content: "A1" },
      { role: "user", content: "two\nlines\n" },
      { role: "assistant", content: "A2" },
      { role: "user", content: "third" },
    ]);
    // one-shot: the prompt, with piped stdin appended
    seen.length = 0;
    const once = await mf(["run", "m", "summarise"], "some text\n", { MF_HOST: at });
    assert.equal(once.code, 0, once.stderr);
    assert.equal(once.stdout, "ok\n");
    assert.equal(seen.find((x) => x.path === "/api/generate")?.body.prompt, "summarise\n\nsome text");
  } finally {
    await new Promise((r) => fake.close(r));
  }
});

test("mf demo (npm start): the commands it prints work as printed; its curl line streams a short answer; logs come after the serve header", async () => {
  const demoDir = join(dir, "demo");
  const demo = spawn(process.execPath, [MF_BIN, "demo", "--dir", demoDir], { cwd: ROOT, env: mfEnv(env({ MF_HOST: "127.0.0.1:0" })) });
  try {
    let out = "";
    await new Promise<void>((res, rej) => {
      demo.stdout!.on("data", (d) => {
        out += d;
        if (/^ {2}MF_HOST=.*\n/m.test(out)) res(); // its last line
      });
      demo.on("exit", (code) => rej(new Error(`mf demo exited ${code}: ${out}`)));
    });
    const sh = (line: string, extra: Record<string, string> = {}) => runProcess("sh", ["-c", line], { env: mfEnv(env(extra)) });
    // the server's JSON log starts after the header of the command that starts it
    const header = out.indexOf(`$ MF_MODELS=${join(demoDir, "models")} npx mf serve\n`);
    // (the first JSON line: the engine it runs, or fastify's "Server listening")
    const log = out.search(/^\{"level":/m);
    assert.ok(header >= 0 && log > header, out);
    // every command is `npx mf …` on the demo's store (no `mf` on the PATH after npm ci): run each as
    // printed, with the built binary in place of npx's lookup of this package's bin
    const commands = [...out.matchAll(/^\$ (.*)$/gm)].map((m) => m[1]!);
    assert.deepEqual(commands.map((c) => c.replace(/^MF_MODELS=\S+ npx mf (\w+).*/, "$1")), ["build", "list", "show", "serve"]);
    const expect = [/^sha256:[0-9a-f]{64}\n$/, /^NAME\s+ID\s+SIZE\s+MODIFIED\nmario:latest\s/, /^FROM \/.*sha256-/m];
    const printed: string[] = [];
    for (const [i, c] of commands.slice(0, 3).entries()) {
      const r = await sh(c.replace(" npx mf ", ` ${JSON.stringify(process.execPath)} ${JSON.stringify(MF_BIN)} `));
      assert.equal(r.code, 0, `${c}: ${r.stderr}`);
      assert.match(r.stdout, expect[i]!, c);
      printed.push(r.stdout);
    }
    assert.ok(out.includes(`\n${printed[0]}`), "the build as printed makes the demo's image");
    // the curl line, run as printed: a streamed answer, short
    const curl = /^ {2}(curl .*)$/m.exec(out)![1]!;
    const r = await sh(curl);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { model: string; message: { role: string; content: string }; done: boolean; eval_count?: number });
    assert.ok(lines.length > 2, `streamed as NDJSON: ${r.stdout}`);
    assert.ok(lines.slice(0, -1).every((l) => !l.done && l.model === "mario" && l.message.role === "assistant"));
    const last = lines.at(-1)!;
    assert.equal(last.done, true);
    assert.ok(last.eval_count! >= 1 && last.eval_count! <= 32, `num_predict bounds the answer: ${last.eval_count}`);
    // the mf run line, run exactly as printed (npx finds this package's own bin; offline, a fresh npm
    // cache), read up to its first bytes: the demo model rarely stops on its own
    const run = /^ {2}(MF_HOST=.*)$/m.exec(out)![1]!;
    assert.match(run, /^MF_HOST=\S+ npx mf run mario "Hello!"$/);
    const answer = await sh(`${run} | head -c 16`, { npm_config_cache: join(dir, "npm-cache"), npm_config_offline: "true", npm_config_update_notifier: "false" });
    assert.equal(answer.code, 0, answer.stderr);
    assert.ok(answer.stdout.length > 0, "an answer");
  } finally {
    const gone = new Promise((r) => demo.once("exit", r));
    demo.kill("SIGTERM");
    await gone;
  }
});
