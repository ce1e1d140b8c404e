/**
 * `mf run`'s chat as a person uses it, in a real pseudo-terminal (tmux) against a real `mf serve` over
 * fixture models: echo, line editing, history, Ctrl-C that stops an answer or discards a line, Ctrl-D and
 * `/bye`; the `/set parameter` and `/show` messages; and a reader that closes mf's stdout early.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { buildFromModelfile } from "../../builder/build.js";
import { parseRef } from "../../core/reference.js";
import { LocalStore } from "../../core/store.js";
import { TINY, cachedFixture } from "../../fixtures/gguf/index.js";
import { MF_BIN, ROOT, type MfServe, mf, mfEnv, startMfServe } from "../helpers/mf.js";
import { TMUX_MISSING, Terminal } from "../helpers/tmux.js";
import { CHAT_MODELFILE, tinyGguf } from "./harness.js";

/**
 * A model that answers for minutes: the tiny weights with a 32k context, greedy, no stop strings (its
 * greedy answers fall into a loop that never samples an end token), so Ctrl-C always lands mid-answer.
 */
const LONG_MODELFILE = `FROM ./long.gguf
TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
PARAMETER num_ctx 32768
PARAMETER temperature 0
`;

let dir: string;
let serve: MfServe | undefined;

function env(extra: Record<string, string> = {}): Record<string, string> {
  return { HOME: dir, MF_HOME: join(dir, "home"), MF_MODELS: join(dir, "models"), MF_HOST: serve?.host ?? "", ...extra };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mf-run-chat-"));
  const store = new LocalStore(join(dir, "models"));
  const ctx = join(dir, "ctx");
  await mkdir(ctx, { recursive: true });
  await copyFile(await tinyGguf(), join(ctx, "tiny.gguf"));
  await copyFile(await cachedFixture({ ...TINY, name: "mf-tiny-32k", contextLength: 32768 }, join(ROOT, ".mf-test-cache")), join(ctx, "long.gguf"));
  await writeFile(join(ctx, "Modelfile"), CHAT_MODELFILE);
  await writeFile(join(ctx, "Long.Modelfile"), LONG_MODELFILE);
  await buildFromModelfile(join(ctx, "Modelfile"), { store, tags: [parseRef("chat")], contextDir: ctx, homeDir: dir });
  await buildFromModelfile(join(ctx, "Long.Modelfile"), { store, tags: [parseRef("long")], contextDir: ctx, homeDir: dir });
  // one slot per model: an answer that went on after Ctrl-C would hold back the next one
  serve = await startMfServe(["--no-gpu", "--threads", "1"], env({ MF_NUM_PARALLEL: "1" }));
});

after(async () => {
  await serve?.stop();
  await rm(dir, { recursive: true, force: true });
});

const lastLine = (screen: string) => screen.split("\n").at(-1)!;
/** The screen ends at an empty prompt, after `marker` (a line already on the screen before it). */
const promptAfter = (marker: string) => (s: string) => s.includes(marker) && s.lastIndexOf(marker) < s.lastIndexOf("\n>>>") && lastLine(s) === ">>>";

describe("mf run in a terminal", { skip: TMUX_MISSING }, () => {
  test("echo, line editing and history; Ctrl-C stops an answer and returns to the prompt; /bye exits 0", async () => {
    const t = await Terminal.start([process.execPath, MF_BIN, "run", "long"], { env: env(), cwd: ROOT });
    try {
      await t.waitFor((s) => s.includes("Send a message") && lastLine(s) === ">>>", "first prompt");
      // what is typed shows, and the cursor keys edit it: "/shw system", ← ×8, "o" → "/show system"
      await t.type("/shw system");
      await t.waitFor((s) => lastLine(s) === ">>> /shw system", "echo of the typed line");
      await t.keys(...Array<string>(8).fill("Left"));
      await t.type("o");
      await t.waitFor((s) => lastLine(s) === ">>> /show system", "the edited line");
      await t.keys("Enter");
      await t.waitFor(promptAfter("No system message was specified for this model."), "the answer to /show system");
      // ↑ brings the line back from the history
      await t.keys("Up");
      await t.waitFor((s) => lastLine(s) === ">>> /show system", "the history's last line");
      await t.keys("C-u");
      // Ctrl-C at an empty prompt says how to leave, and leaves nothing
      await t.keys("C-c");
      await t.waitFor(promptAfter("Use Ctrl + d or /bye to exit."), "the Ctrl-C hint");
      // Ctrl-C with a typed line discards the line: it is never sent
      await t.type("never sent");
      await t.waitFor((s) => lastLine(s) === ">>> never sent", "echo");
      await t.keys("C-c");
      const discarded = await t.waitFor((s) => lastLine(s) === ">>>", "the line discarded");
      assert.doesNotMatch(discarded, /never sent/, "a line that was sent would stay on the screen");

      // an answer that would go on for minutes: Ctrl-C as soon as it shows
      await t.type("Tell me everything");
      await t.keys("Enter");
      const streaming = await t.waitFor((s) => {
        const i = s.lastIndexOf(">>> Tell me everything\n");
        return i >= 0 && s.slice(i + ">>> Tell me everything\n".length).trim().length > 0;
      }, "the answer streaming");
      assert.doesNotMatch(streaming, /\[exited/);
      await t.keys("C-c");
      await t.waitFor(promptAfter(">>> Tell me everything"), "the prompt after Ctrl-C");
      // the server stopped that answer: with one slot, the next answer could not start before it ends
      await t.type("/set parameter num_predict 4");
      await t.keys("Enter");
      await t.waitFor(promptAfter("Set parameter 'num_predict' to '4'"), "/set parameter");
      await t.type("And now?");
      await t.keys("Enter");
      await t.waitFor(promptAfter(">>> And now?"), "a second, short answer");
      await t.type("/bye");
      await t.keys("Enter");
      const end = await t.waitFor((s) => /\[exited \d+\]/.test(s), "mf run to end");
      assert.match(end, /\[exited 0\]/);
    } finally {
      await t.kill();
    }
  });

  test("Ctrl-D at an empty prompt exits 0", async () => {
    const t = await Terminal.start([process.execPath, MF_BIN, "run", "chat"], { env: env(), cwd: ROOT });
    try {
      await t.waitFor((s) => lastLine(s) === ">>>", "first prompt");
      await t.keys("C-d");
      const end = await t.waitFor((s) => /\[exited \d+\]/.test(s), "mf run to end");
      assert.match(end, /\[exited 0\]/);
    } finally {
      await t.kill();
    }
  });

  test("Ctrl-C aborts the answer's request, and the cancelled exchange is left out of the conversation", async () => {
    // a stand-in server that records the chat requests: the first answer never ends, the others do
    const chats: { body: { messages: { role: string; content: string }[] }; closed: Promise<void> }[] = [];
    const fake = createServer((req: IncomingMessage, res) => {
      let text = "";
      req.on("data", (d) => (text += d));
      req.on("end", () => {
        if (req.url === "/") return res.end("Ollama is running");
        if (req.url !== "/api/chat") return res.end("{}");
        const closed = new Promise<void>((r) => res.once("close", () => r()));
        chats.push({ body: JSON.parse(text), closed });
        res.setHeader("content-type", "application/x-ndjson");
        res.write(`${JSON.stringify({ message: { role: "assistant", content: `part of answer ${chats.length}` }, done: false })}\n`);
        if (chats.length > 1) res.end(`${JSON.stringify({ message: { role: "assistant", content: "" }, done: true })}\n`);
      });
    });
    await new Promise<void>((r) => fake.listen(0, "127.0.0.1", r));
    const at = `127.0.0.1:${(fake.address() as { port: number }).port}`;
    const t = await Terminal.start([process.execPath, MF_BIN, "run", "m"], { env: env({ MF_HOST: at }), cwd: ROOT });
    try {
      await t.waitFor((s) => lastLine(s) === ">>>", "first prompt");
      await t.type("first");
      await t.keys("Enter");
      await t.waitFor((s) => s.includes("part of answer 1"), "the first answer");
      await t.keys("C-c");
      await chats[0]!.closed; // the request was aborted
      await t.waitFor(promptAfter("part of answer 1"), "the prompt after Ctrl-C");
      await t.type("second");
      await t.keys("Enter");
      await t.waitFor(promptAfter("part of answer 2"), "the second answer");
      assert.deepEqual(chats[1]!.body.messages, [{ role: "user", content: "second" }]);
    } finally {
      await t.kill();
      await new Promise((r) => fake.close(r));
    }
  });
});

test("/set parameter says what is wrong; /show and /show parameters list the session's parameters", async () => {
  const input = [
    "/set parameter num_predx 3",
    "/set parameter temperature abc",
    "/set parameter num_ctx 1.5",
    "/set parameter temperature 0.25",
    "/set parameter stop <|end|>",
    "/show parameters",
    "/show",
    "/set system Be terse.",
    "/show system",
    "/bye",
  ].join("\n");
  const r = await mf(["run", "chat", "--interactive"], { env: env(), input });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Couldn't set parameter: unknown parameter "num_predx" \(did you mean "num_predict"\?\)\n/);
  assert.match(r.stdout, /Couldn't set parameter: "temperature" needs a number, got "abc"\n/);
  assert.match(r.stdout, /Couldn't set parameter: "num_ctx" needs an integer, got "1.5"\n/);
  assert.match(r.stdout, /Set parameter 'temperature' to '0.25'\n/);
  assert.match(r.stdout, /User defined parameters:\nstop\s+"<\|end\|>"\ntemperature\s+0.25\nModel defined parameters:\nnum_ctx\s+512\nstop\s+"<\|im_start\|>"\nstop\s+"<\|im_end\|>"\n/);
  // /show: the model's parameters with the session's in place of the ones it sets
  assert.match(r.stdout, /  Parameters\n    num_ctx\s+512\n    stop\s+"<\|end\|>"\n    temperature\s+0.25\n/);
  assert.match(r.stdout, /  System\n    You are a test\.\n/);
  assert.match(r.stdout, /Set system message\.\n>>> Be terse\.\n/);
});

test("a reader that closes mf run's stdout early ends it quietly, with no stack trace", async () => {
  const child = spawn(process.execPath, [MF_BIN, "run", "long", "Hello!"], { cwd: ROOT, env: mfEnv(env()) });
  child.stdin.end();
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const code = await new Promise<number | null>((res) => {
    // `| head -c 20`: read the first bytes of the answer, then close the pipe
    child.stdout.once("data", () => child.stdout.destroy());
    child.on("close", (c) => res(c));
  });
  assert.equal(stderr, "");
  assert.equal(code, 141, "the exit status of a writer whose reader went away");
});
