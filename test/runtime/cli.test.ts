/** `mf serve`, `mf run`, `mf ps`, `mf stop` as processes of the built binary (`npm test` builds it first). */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { buildFromModelfile } from "../../builder/build.js";
import { parseRef } from "../../core/reference.js";
import { LocalStore } from "../../core/store.js";
import { existsSync } from "node:fs";
import { MF_BIN, ROOT } from "../helpers/mf.js";
import { CHAT_MODELFILE, tinyGguf } from "./harness.js";

let dir: string;
let server: ChildProcess | undefined;
let host = "";

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, HOME: dir, MF_HOME: join(dir, "home"), MF_MODELS: join(dir, "models"), ...extra };
  delete e.MF_DEBUG;
  return e;
}

function mf(args: string[], input = "", extra: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [MF_BIN, ...args], { cwd: ROOT, env: env({ MF_HOST: host, ...extra }) });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("error", rej);
    p.on("close", (code) => res({ code, stdout, stderr }));
    p.stdin.end(input);
  });
}

before(async () => {
  if (!existsSync(MF_BIN)) throw new Error(`${MF_BIN} is missing: run \`npm run build\` first (npm test does)`);
  dir = await mkdtemp(join(tmpdir(), "mf-cli-serve-"));
  const ctx = join(dir, "ctx");
  await mkdir(ctx, { recursive: true });
  await copyFile(await tinyGguf(), join(ctx, "tiny.gguf"));
  await writeFile(join(ctx, "Modelfile"), CHAT_MODELFILE);
  await buildFromModelfile(join(ctx, "Modelfile"), { store: new LocalStore(join(dir, "models")), tags: [parseRef("chat")], contextDir: ctx, homeDir: dir });
  // the address, keep_alive and extra origins come from the environment (core/config), not flags
  server = spawn(process.execPath, [MF_BIN, "serve", "--no-gpu", "--threads", "1"], {
    cwd: ROOT,
    env: env({ MF_HOST: "127.0.0.1:0", MF_KEEP_ALIVE: "7m", MF_ORIGINS: "https://app.example.com" }),
  });
  let out = "";
  host = await new Promise<string>((res, rej) => {
    server!.stdout!.on("data", (d) => {
      out += d;
      const m = /listening on http:\/\/(127\.0\.0\.1:\d+)/.exec(out);
      if (m) res(m[1]!);
    });
    server!.on("exit", (code) => rej(new Error(`mf serve exited ${code}: ${out}`)));
  });
});

after(async () => {
  if (server && server.exitCode === null) {
    const gone = new Promise((r) => server!.once("exit", r));
    server.kill("SIGTERM");
    await gone;
  }
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

test("mf demo (npm start) serves the demo store and prints a curl line that works", async () => {
  const demo = spawn(process.execPath, [MF_BIN, "demo", "--dir", join(dir, "demo")], { cwd: ROOT, env: env({ MF_HOST: "127.0.0.1:0" }) });
  try {
    let out = "";
    const curl = await new Promise<RegExpExecArray>((res, rej) => {
      demo.stdout!.on("data", (d) => {
        out += d;
        const m = /curl (http:\/\/127\.0\.0\.1:\d+\/api\/chat) -d '([^']+)'\n/.exec(out);
        if (m) res(m);
      });
      demo.on("exit", (code) => rej(new Error(`mf demo exited ${code}: ${out}`)));
    });
    const r = await fetch(curl[1]!, { method: "POST", body: curl[2]!.replace(/}$/, ', "options": {"num_predict": 4}}') });
    assert.equal(r.status, 200);
    const j = (await r.json()) as { model: string; message: { role: string }; done: boolean; eval_count: number };
    assert.equal(j.model, "mario");
    assert.equal(j.message.role, "assistant");
    assert.equal(j.eval_count, 4);
  } finally {
    const gone = new Promise((r) => demo.once("exit", r));
    demo.kill("SIGTERM");
    await gone;
  }
});
