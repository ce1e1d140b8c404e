/**
 * The real `mf serve` binary: `--create-root` (the only directory /api/create reads), and SIGTERM, which
 * lets the answers in flight finish (a stream started before it ends with `done: true`, an upload in
 * progress completes) while new requests get 503, then exits 0.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { buildFromModelfile } from "../../builder/build.js";
import { parseRef } from "../../core/reference.js";
import { LocalStore } from "../../core/store.js";
import { MF_BIN, ROOT } from "../helpers/mf.js";
import { CHAT_MODELFILE, tinyGguf } from "./harness.js";

let dir: string;
let server: ChildProcess | undefined;
let base = "";
/** what the server wrote to stderr, and when each piece arrived (in order of arrival with `events`) */
let stderr = "";
const events: string[] = [];

before(async () => {
  if (!existsSync(MF_BIN)) throw new Error(`${MF_BIN} is missing: run \`npm run build\` first (npm test does)`);
  dir = await mkdtemp(join(tmpdir(), "mf-serve-shutdown-"));
  const ctx = join(dir, "ctx");
  const root = join(dir, "root");
  await mkdir(ctx, { recursive: true });
  await mkdir(root, { recursive: true });
  await copyFile(await tinyGguf(), join(ctx, "tiny.gguf"));
  await copyFile(await tinyGguf(), join(root, "tiny.gguf"));
  await writeFile(join(ctx, "Modelfile"), CHAT_MODELFILE);
  await writeFile(join(root, "Modelfile"), "FROM ./tiny.gguf\nSYSTEM from the create root\n");
  await buildFromModelfile(join(ctx, "Modelfile"), { store: new LocalStore(join(dir, "models")), tags: [parseRef("chat")], contextDir: ctx, homeDir: dir });
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: dir, MF_HOME: join(dir, "home"), MF_MODELS: join(dir, "models"), MF_HOST: "127.0.0.1:0" };
  delete env.MF_DEBUG;
  server = spawn(process.execPath, [MF_BIN, "serve", "--no-gpu", "--threads", "1", "--create-root", root, "--shutdown-grace", "2m"], { cwd: ROOT, env });
  server.stderr!.on("data", (d) => {
    stderr += d;
    if (/SIGTERM: finishing in-flight answers/.test(stderr) && !events.includes("draining")) events.push("draining");
  });
  let out = "";
  base = await new Promise<string>((res, rej) => {
    server!.stdout!.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) res(m[1]!);
    });
    server!.on("exit", (code) => rej(new Error(`mf serve exited ${code}: ${out} ${stderr}`)));
  });
});

after(async () => {
  if (server && server.exitCode === null && server.signalCode === null) {
    const gone = new Promise((r) => server!.once("exit", r));
    server.kill("SIGKILL");
    await gone;
  }
  await rm(dir, { recursive: true, force: true });
});

const post = async (path: string, body: unknown) => {
  const r = await fetch(base + path, { method: "POST", body: JSON.stringify(body) });
  return { status: r.status, json: (await r.json()) as any };
};

test("--create-root: /api/create reads a Modelfile inside the root, nothing outside it", async () => {
  const ok = await post("/api/create", { model: "rooted", path: "Modelfile", stream: false });
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
  assert.equal((await post("/api/show", { model: "rooted" })).json.system, "from the create root");
  const out = await post("/api/create", { model: "x", path: "/etc/passwd", stream: false });
  assert.equal(out.status, 400);
  assert.equal(out.json.error, '"/etc/passwd" is outside the directory this server reads (--create-root)');
});

test("SIGTERM: a stream started before it ends with done:true, an upload in progress completes, new requests get 503, then exit 0", async () => {
  // an upload whose body is held open: the drain cannot end before the test lets it
  const blob = Buffer.from("a blob uploaded across the shutdown");
  const digest = "sha256:" + createHash("sha256").update(blob).digest("hex");
  const url = new URL(`${base}/api/blobs/${digest}`);
  const upload = request({ host: url.hostname, port: url.port, path: url.pathname, method: "POST", headers: { "content-length": blob.length } });
  const uploaded = new Promise<number>((res, rej) => {
    upload.on("response", (r) => {
      r.resume();
      res(r.statusCode!);
    });
    upload.on("error", rej);
  });
  upload.write(blob.subarray(0, 10));

  const options = { seed: 15, temperature: 1.5, top_k: 0, top_p: 1, num_ctx: 2048, num_predict: 600 };
  const res = await fetch(base + "/api/generate", { method: "POST", body: JSON.stringify({ model: "chat", prompt: "tell me a story", options }) });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let text = dec.decode((await reader.read()).value, { stream: true });
  server!.kill("SIGTERM");
  const exited = new Promise<number | null>((r) => server!.once("exit", (code) => r(code)));
  const reading = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
    }
    events.push("stream ended");
  })();
  while (!events.includes("draining")) await new Promise((r) => setTimeout(r, 20));

  const refused = await fetch(base + "/api/version");
  assert.equal(refused.status, 503);
  assert.deepEqual(await refused.json(), { error: "server is shutting down" });

  upload.end(blob.subarray(10));
  assert.equal(await uploaded, 201);
  await reading;
  const lines = text.trim().split("\n").map((l) => JSON.parse(l));
  const last = lines.at(-1);
  assert.equal(last.done, true, JSON.stringify(last));
  assert.ok(["stop", "length"].includes(last.done_reason));
  assert.ok(lines.slice(0, -1).every((l) => l.done === false && typeof l.response === "string"));
  assert.ok(last.eval_count > 1);
  assert.deepEqual(events, ["draining", "stream ended"], "the stream was still running when the drain began");
  assert.equal(await exited, 0, stderr);
});
