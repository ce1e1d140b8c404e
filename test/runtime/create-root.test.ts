/**
 * /api/create and the server's own files, over real HTTP: without --create-root the server reads none (a
 * `path`, FROM or ADAPTER path), and its answers are the same whether the file exists or not; clients
 * upload blobs and name them by digest. With a create root it reads regular files inside it only (links
 * leading out count as missing), and never quotes a file it read in an error.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type Harness, post, startHarness, tinyGguf } from "./harness.js";

let dir: string;
/** a directory the servers must never read */
let outside: string;
/** the create root of the second server */
let root: string;
let bare: Harness;
let rooted: Harness;
const SECRET = "SECRET_TOKEN=hunter2";

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mf-create-root-"));
  outside = join(dir, "outside");
  root = join(dir, "root");
  await mkdir(outside);
  await mkdir(join(root, "sub"), { recursive: true });
  const gguf = await tinyGguf();
  await copyFile(gguf, join(outside, "model.gguf"));
  await writeFile(join(outside, "secret.gguf"), "root:x:0:0:root:/root:/bin/bash\n");
  await writeFile(join(outside, "Modelfile"), `FROM ./model.gguf\nSYSTEM ${SECRET}\n`);
  await copyFile(gguf, join(root, "tiny.gguf"));
  await writeFile(join(root, "Modelfile"), "FROM ./tiny.gguf\nSYSTEM from the root\n");
  await writeFile(join(root, "sub", "Modelfile"), "FROM ../tiny.gguf\nSYSTEM from sub\n");
  await writeFile(join(root, "secret.txt"), `${SECRET}\nmore secrets\n`);
  await writeFile(join(root, "notgguf.gguf"), "root:x:0:0:root:/root:/bin/bash\n");
  await writeFile(join(root, "BadTemplate"), "FROM ./tiny.gguf\nTEMPLATE {{ .SECRET_TOKEN_hunter2\n");
  await symlink(join(outside, "Modelfile"), join(root, "link-out"));
  await symlink(join(outside, "model.gguf"), join(root, "link-out.gguf"));
  bare = await startHarness();
  rooted = await startHarness({ createRoot: root });
});
after(async () => {
  await bare?.close();
  await rooted?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const create = (h: Harness, body: Record<string, unknown>) => post(h.base, "/api/create", { stream: false, ...body });
const models = async (h: Harness) => ((await (await fetch(h.base + "/api/tags")).json()) as { models: { name: string }[] }).models.map((m) => m.name);

/** An answer's error with `value` (what the client sent) written as X, to compare two answers. */
const shape = (error: string, value: string) => error.split(value).join("X");

function noDisclosure(error: string): void {
  assert.doesNotMatch(error, /hunter2|SECRET|root:x|magic|MF_|PATH=/, error);
}

describe("a server without --create-root reads no file of its own", { concurrency: false }, () => {
  test('"path": refused the same way whether the file exists or not, its content never quoted', async () => {
    const errors: string[] = [];
    for (const path of ["/proc/self/environ", join(outside, "Modelfile"), join(outside, "no-such-file")]) {
      const r = await create(bare, { model: "x", path });
      assert.equal(r.status, 400, r.text);
      noDisclosure(r.json.error);
      assert.match(r.json.error, /this server reads no files, so "path" cannot be used/);
      errors.push(shape(r.json.error, path));
    }
    assert.equal(new Set(errors).size, 1, errors.join("\n"));
  });

  test("FROM and ADAPTER paths, and files given as paths: refused without looking, whatever is there", async () => {
    const existing = join(outside, "model.gguf");
    const answers = new Map<string, string[]>();
    for (const path of [existing, join(outside, "secret.gguf"), join(outside, "missing.gguf"), "/etc/passwd", "~/.ssh/id_ed25519"]) {
      for (const body of [
        { modelfile: `FROM ${path}\n` },
        { modelfile: `FROM chat\nADAPTER ${path}\n` },
        { from: path },
        { files: { "model.gguf": path } },
      ]) {
        const r = await create(bare, { model: "x", ...body });
        assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
        noDisclosure(r.json.error);
        assert.match(r.json.error, /names a file on the server, and this server reads none/);
        const key = Object.keys(body)[0]! + (body.modelfile?.includes("ADAPTER") ? "-adapter" : "");
        answers.set(key, [...(answers.get(key) ?? []), shape(r.json.error, path)]);
      }
    }
    for (const [key, errs] of answers) assert.equal(new Set(errs).size, 1, `${key}: ${errs.join("\n")}`);
    assert.ok(!(await models(bare)).includes("x:latest"), "nothing was imported");
  });

  test("uploaded blobs named by digest work: the JSON form, FROM sha256: and FROM @sha256: (older clients)", async () => {
    const bytes = await readFile(await tinyGguf());
    const digest = "sha256:" + createHash("sha256").update(bytes).digest("hex");
    const up = await fetch(`${bare.base}/api/blobs/${digest}`, { method: "POST", body: bytes });
    assert.ok(up.status === 201 || up.status === 200, String(up.status));
    assert.equal((await fetch(`${bare.base}/api/blobs/${digest}`, { method: "HEAD" })).status, 200);
    for (const [model, body] of [
      ["from-files", { files: { "tiny.gguf": digest }, system: "uploaded" }],
      ["from-digest", { modelfile: `FROM ${digest}\nSYSTEM uploaded\n` }],
      ["from-at-digest", { modelfile: `FROM @${digest}\nSYSTEM uploaded\n` }],
    ] as const) {
      const r = await create(bare, { model, ...body });
      assert.equal(r.status, 200, `${model}: ${r.text}`);
      assert.equal(r.json.status, "success");
      const shown = await post(bare.base, "/api/show", { model });
      assert.equal(shown.json.system, "uploaded");
    }
  });
});

describe("a server with --create-root reads only inside it", { concurrency: false }, () => {
  test("a Modelfile by path (relative to the root or absolute), and relative FROM paths inside the root", async () => {
    for (const [model, body, system] of [
      ["rel", { path: "Modelfile" }, "from the root"],
      ["abs", { path: join(root, "Modelfile") }, "from the root"],
      ["sub", { path: "sub/Modelfile" }, "from sub"],
      ["text", { modelfile: "FROM ./tiny.gguf\nSYSTEM as text\n" }, "as text"],
    ] as const) {
      const r = await create(rooted, { model, ...body });
      assert.equal(r.status, 200, `${model}: ${r.text}`);
      assert.equal((await post(rooted.base, "/api/show", { model })).json.system, system);
    }
  });

  test("outside the root: refused without looking, the same for a file that exists and one that does not", async () => {
    const errors: string[] = [];
    for (const path of [join(outside, "Modelfile"), join(outside, "nothing"), "../outside/Modelfile", "/proc/self/environ"]) {
      const r = await create(rooted, { model: "x", path });
      assert.equal(r.status, 400, r.text);
      noDisclosure(r.json.error);
      errors.push(shape(r.json.error, path));
    }
    assert.equal(new Set(errors).size, 1, errors.join("\n"));
    assert.match(errors[0]!, /"X" is outside the directory this server reads \(--create-root\)/);
    const from: string[] = [];
    for (const path of [join(outside, "model.gguf"), join(outside, "secret.gguf"), join(outside, "missing.gguf"), "../outside/model.gguf"]) {
      const r = await create(rooted, { model: "x", modelfile: `FROM ${path}\n` });
      assert.equal(r.status, 400, r.text);
      noDisclosure(r.json.error);
      from.push(shape(r.json.error, path));
    }
    assert.equal(new Set(from).size, 1, from.join("\n"));
  });

  test("a link inside the root that leads out counts as missing", async () => {
    const viaLink = await create(rooted, { model: "x", path: "link-out" });
    const missing = await create(rooted, { model: "x", path: "no-such" });
    assert.equal(viaLink.status, 400);
    noDisclosure(viaLink.json.error);
    assert.equal(shape(viaLink.json.error, "link-out"), shape(missing.json.error, "no-such"));
    const fromLink = await create(rooted, { model: "x", modelfile: "FROM ./link-out.gguf\n" });
    const fromMissing = await create(rooted, { model: "x", modelfile: "FROM ./no-such.gguf\n" });
    assert.equal(fromLink.status, 400);
    assert.equal(shape(fromLink.json.error, "./link-out.gguf"), shape(fromMissing.json.error, "./no-such.gguf"));
    assert.ok(!(await models(rooted)).includes("x:latest"));
  });

  test("errors about a file the server read do not quote it", async () => {
    const notModelfile = await create(rooted, { model: "x", path: "secret.txt" });
    assert.equal(notModelfile.status, 400);
    assert.equal(notModelfile.json.error, "secret.txt:1:1: invalid Modelfile (a file the server reads is not quoted in errors)");
    const badTemplate = await create(rooted, { model: "x", path: "BadTemplate" });
    assert.equal(badTemplate.status, 400);
    noDisclosure(badTemplate.json.error);
    assert.match(badTemplate.json.error, /^BadTemplate:2:\d+: invalid Modelfile/);
    const notGguf = await create(rooted, { model: "x", modelfile: "FROM ./notgguf.gguf\n" });
    assert.equal(notGguf.status, 400);
    assert.equal(notGguf.json.error, 'Modelfile:1:6: "./notgguf.gguf" is not a valid GGUF file');
  });
});
