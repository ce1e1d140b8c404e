/**
 * The registry's web page in a real browser: Debian's headless Chromium, driven by playwright-core,
 * opens the page of a real `mf registry serve --access …` process that models were pushed to by real
 * `mf push` (logged in with an API key from `mf registry key add`). It checks what a person sees (the
 * list, search, pagination, a repository's tags and who pushed them, a model's facts and pull commands, a
 * signature listed as a referrer, sign-in, and "not found or access denied" for a repository the key may
 * not pull), runs axe-core on each view (no serious or critical violations), and takes screenshots
 * (into MF_WEB_SCREENSHOTS when set, else a temporary directory removed afterwards).
 */
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { LocalStore } from "../../../core/store.js";
import { buildModel } from "../client/helpers.js";
import { freePort, spawnMfRegistry, tempDir, type SpawnedRegistry } from "../peers.js";
import { runMf } from "../run-mf.js";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_MISSING = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install chromium): the browser checks of the web page could not run`;
const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

describe("registry web page in Chromium", () => {
  if (CHROMIUM_MISSING) {
    it("lists, details, search, sign-in and access denied, with axe-core", { skip: CHROMIUM_MISSING }, () => {});
    return;
  }
  let dir: string;
  let shots: string;
  let reg: SpawnedRegistry;
  let host: string;
  let base: string;
  let browser: Browser;
  let viewerKey: string;
  let ciKey: string;
  let signature: string;

  const home = (who: string) => ({ MF_HOME: join(dir, who), MF_MODELS: join(dir, who, "models") });

  before(async () => {
    dir = await tempDir("mf-web-page-");
    shots = process.env.MF_WEB_SCREENSHOTS ?? join(dir, "shots");
    await mkdir(shots, { recursive: true });
    const accessPath = join(dir, "access.yaml");
    await writeFile(accessPath, 'anonymous:\n  "library/*": [pull]\n');
    for (const [id, allow] of [["ci", ["library/*=pull,push", "team/*=pull,push"]], ["viewer", ["team/alpha=pull"]]] as const) {
      const add = await runMf(["registry", "key", "add", id, "--access", accessPath, ...allow.flatMap((a) => ["--allow", a])], home("admin"));
      assert.equal(add.code, 0, add.stderr);
      if (id === "ci") ciKey = add.stdout.trim();
      else viewerKey = add.stdout.trim();
    }
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    reg = await spawnMfRegistry(join(dir, "registry"), ["--access", accessPath, "--addr", `127.0.0.1:${port}`, "--public-url", base, "--verbose"]);
    host = new URL(base).host;
    const ci = home("ci");
    await mkdir(ci.MF_HOME, { recursive: true });
    const login = await runMf(["login", host, "--insecure"], ci, `${ciKey}\n`);
    assert.equal(login.code, 0, login.stderr);
    const store = new LocalStore(ci.MF_MODELS);
    for (const [i, name] of ["library/tinyllama:latest", "library/tinyllama:v1", "library/smollm:latest", "library/qwen-tiny:latest", "team/alpha:latest", "team/secret:latest"].entries()) {
      await buildModel(store, dir, `${host}/${name}`, { seed: i + 1 });
      const push = await runMf(["push", `${host}/${name}`, "--insecure", "-q"], ci);
      assert.equal(push.code, 0, push.stderr);
    }
    signature = await pushSignature(base, ciKey, "library/tinyllama", "latest");
    browser = await (await import("playwright-core")).chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"], headless: true });
  });
  after(async () => {
    await browser?.close();
    reg?.child.kill("SIGTERM");
    if (reg) await reg.exited;
    if (dir && !process.env.MF_WEB_SCREENSHOTS) await rm(dir, { recursive: true, force: true });
    else if (dir) await rm(join(dir, "registry"), { recursive: true, force: true });
  });

  async function open(page: Page, path: string): Promise<void> {
    await page.goto(`${base}${path}`);
    await page.waitForSelector("body[data-ready]");
  }

  /** axe-core on the page as it is: no serious or critical violations. */
  async function accessible(page: Page, what: string): Promise<void> {
    // evaluated through the debugging protocol, which the page's Content-Security-Policy does not govern
    await page.evaluate(`${await readFile(AXE, "utf8")};0`);
    const violations = (await page.evaluate("axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations)")) as AxeViolation[];
    const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
    assert.deepEqual(bad.map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`), [], what);
  }

  const rows = (page: Page) => page.$$eval("tbody tr", (trs) => trs.map((tr) => Array.from(tr.children, (c) => (c as unknown as { innerText: string }).innerText.trim())));

  it("anonymous: the list shows what anonymous may pull, paginated on the server, and searchable", async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
    await open(page, "/?per_page=2");
    assert.equal(await page.innerText("h1"), "Repositories");
    assert.equal(await page.innerText("#count"), "3 repositories");
    assert.deepEqual((await rows(page)).map((r) => r[0]), ["library/qwen-tiny", "library/smollm"]);
    assert.equal(await page.innerText("[aria-current=page]"), "Page 1 of 2");
    await accessible(page, "the list");
    await page.click("a[rel=next]");
    await page.waitForSelector("body[data-ready]");
    const second = await rows(page);
    assert.deepEqual(second.map((r) => [r[0], r[1]]), [["library/tinyllama", "2"]], "team/* is not shown to anonymous visitors");
    assert.match(second[0]![2]!, /^\d+(\.\d)? (kB|MB)$/);
    assert.match(second[0]![3]!, /^\d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
    await page.fill("#q", "SMOL");
    await page.click("form[role=search] button");
    await page.waitForSelector("body[data-ready]");
    assert.equal(new URL(page.url()).searchParams.get("q"), "SMOL");
    assert.deepEqual((await rows(page)).map((r) => r[0]), ["library/smollm"]);
    assert.equal(await page.innerText("#count"), "1 repository matching “SMOL”");
    await open(page, "/");
    assert.deepEqual((await rows(page)).map((r) => r[0]), ["library/qwen-tiny", "library/smollm", "library/tinyllama"]);
    await page.screenshot({ path: join(shots, "1-repositories.png") });
    await page.close();
  });

  it("a repository's tags with digest, size, push time and pusher; a model's page with its facts, Modelfile and pull commands", async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
    await open(page, "/");
    await page.click("text=library/tinyllama");
    await page.waitForSelector("body[data-ready]");
    assert.equal(new URL(page.url()).pathname, "/r/library/tinyllama");
    const tags = await rows(page);
    assert.deepEqual(tags.map((r) => [r[0], r[4]]), [["latest", "apikey:ci"], ["v1", "apikey:ci"]]);
    assert.match(tags[0]![1]!, /^sha256:[0-9a-f]{12}$/);
    await accessible(page, "a repository");
    await page.screenshot({ path: join(shots, "2-repository.png") });
    await page.click("text=latest");
    await page.waitForSelector("body[data-ready]");
    assert.equal(await page.innerText("h1"), "library/tinyllama:latest");
    await page.screenshot({ path: join(shots, "3-model-top.png") });
    const facts = Object.fromEntries(await page.$$eval(".facts dt", (dts) => dts.map((dt) => [dt.textContent, (dt.nextElementSibling as unknown as { innerText: string }).innerText])));
    assert.equal(facts.Architecture, "llama");
    assert.match(facts.Parameters!, /^\d+(\.\d+)?[KM] \([\d,]+\)$/);
    assert.match(facts.Quantisation!, /^(F32|F16|Q\w+)$/);
    assert.match(facts["Context length"]!, /^[\d,]+$/);
    assert.equal(await page.inputValue(".copy input >> nth=0"), `mf pull --insecure ${host}/library/tinyllama:latest`);
    assert.equal(await page.inputValue(".copy input >> nth=1"), `ollama pull --insecure ${host}/library/tinyllama:latest`);
    assert.match(await page.innerText("details:has(summary:text-is('Template')) pre"), /<\|im_start\|>/);
    assert.equal(await page.innerText("details:has(summary:text-is('System')) pre"), "You are a test.");
    assert.match(await page.innerText("details:has(summary:text-is('Parameters')) pre"), /temperature\s+0\.5/);
    await page.click("summary:text-is('Licence')");
    assert.equal(await page.innerText("details:has(summary:text-is('Licence')) pre"), "MIT");
    await page.click("summary:text-is('Modelfile')");
    const modelfile = await page.innerText("details:has(summary:text-is('Modelfile')) pre");
    assert.match(modelfile, /^FROM sha256:[0-9a-f]{64}$/m);
    assert.match(modelfile, /^PARAMETER temperature 0.5$/m);
    const layerTypes = (await page.$$eval("section:has(#layers-h) tbody tr th", (ths) => ths.map((t) => t.textContent))).sort();
    assert.deepEqual(layerTypes, ["application/vnd.ollama.image.license", "application/vnd.ollama.image.model", "application/vnd.ollama.image.params", "application/vnd.ollama.image.system", "application/vnd.ollama.image.template"]);
    const referrers = await page.$$eval("section:has(#ref-h) tbody tr", (trs) => trs.map((tr) => Array.from(tr.children, (c) => (c as unknown as { innerText: string }).innerText)));
    assert.deepEqual(referrers.map((r) => [r[0], r[1]]), [["application/vnd.example.signature.v1", signature.slice(0, 19)]]);
    await accessible(page, "a model");
    await page.screenshot({ path: join(shots, "3-model.png"), fullPage: true });
    // the signature: any other artifact, its manifest and layers
    await page.click(`section:has(#ref-h) a`);
    await page.waitForSelector("body[data-ready]");
    assert.equal(await page.innerText(".badge"), "Artifact");
    assert.match(await page.innerText(".facts"), /Subject\s+sha256:/);
    assert.equal(await page.$$eval("section:has(#layers-h) tbody tr", (t) => t.length), 1);
    assert.equal(await page.$$eval(".copy", (c) => c.length), 1, "no ollama pull for a signature");
    await accessible(page, "an artifact");
    await page.close();
  });

  it("a repository the visitor may not pull: not found or access denied; a sign-in shows what the key may pull, and no more", async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
    await open(page, "/r/team/alpha");
    assert.equal(await page.innerText("h1"), "Not found or access denied");
    await accessible(page, "access denied");
    // a wrong key: a message, the key never shown back
    await page.fill("#api-key", "mfk_wrong-key-0123456789");
    await page.click("text=Sign in");
    await page.waitForSelector("#sign-in-error:not(:empty)");
    assert.equal(await page.innerText("#sign-in-error"), "That API key is not known to this registry.");
    assert.ok(!(await page.content()).includes("mfk_wrong-key"));
    await page.fill("#api-key", viewerKey);
    await Promise.all([page.waitForEvent("load"), page.click("text=Sign in")]);
    await page.waitForSelector("body[data-ready]");
    assert.match(await page.innerText("#account"), /Signed in with API key viewer/);
    assert.equal(await page.innerText("h1"), "team/alpha");
    const cookies = await page.context().cookies();
    assert.deepEqual(cookies.map((c) => [c.name, c.path, c.httpOnly, c.sameSite]), [["mf_session", "/ui/api", true, "Strict"]]);
    assert.ok(!(await page.evaluate("document.cookie")), "HttpOnly: scripts cannot read it");
    await open(page, "/");
    assert.deepEqual((await rows(page)).map((r) => r[0]), ["library/qwen-tiny", "library/smollm", "library/tinyllama", "team/alpha"]);
    await page.screenshot({ path: join(shots, "4-signed-in.png") });
    await open(page, "/r/team/secret:latest");
    assert.equal(await page.innerText("h1"), "Not found or access denied");
    assert.ok(!(await page.content()).includes("sha256:"), "nothing of the hidden repository is shown");
    await page.screenshot({ path: join(shots, "5-access-denied.png") });
    // the registry's request log (--verbose) holds neither the key nor the session
    const log = reg.output();
    assert.match(log, /"url":"\/ui\/api\/session"/);
    assert.ok(!log.includes(viewerKey) && !log.includes("mfk_wrong-key") && !log.includes(cookies[0]!.value), "no secret in the log");
    await page.click("text=Sign out");
    await page.waitForSelector("body[data-ready]");
    await page.waitForSelector("#api-key");
    await open(page, "/");
    assert.equal((await rows(page)).length, 3);
    await page.close();
  });
});

/** Pushes a small signature-like artifact whose subject is `name:tag`, with an API key over basic auth; its digest. */
async function pushSignature(base: string, key: string, name: string, tag: string): Promise<string> {
  const auth = { authorization: `Basic ${Buffer.from(`ci:${key}`).toString("base64")}` };
  const digest = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
  const subject = await fetch(`${base}/v2/${name}/manifests/${tag}`, { headers: { ...auth, accept: "application/vnd.docker.distribution.manifest.v2+json" } });
  assert.equal(subject.status, 200);
  const subjectBytes = Buffer.from(await subject.arrayBuffer());
  const blobs = [Buffer.from("{}"), Buffer.from("-----BEGIN SSH SIGNATURE-----\nnot a real one\n-----END SSH SIGNATURE-----\n")];
  for (const b of blobs) {
    const post = await fetch(`${base}/v2/${name}/blobs/uploads/`, { method: "POST", headers: auth });
    assert.equal(post.status, 202);
    const loc = new URL(post.headers.get("location")!, base);
    loc.searchParams.set("digest", digest(b));
    const put = await fetch(loc, { method: "PUT", body: b, headers: { ...auth, "content-type": "application/octet-stream" } });
    assert.equal(put.status, 201);
  }
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    artifactType: "application/vnd.example.signature.v1",
    config: { mediaType: "application/vnd.oci.empty.v1+json", digest: digest(blobs[0]!), size: 2 },
    layers: [{ mediaType: "application/vnd.example.signature.sshsig", digest: digest(blobs[1]!), size: blobs[1]!.length }],
    subject: { mediaType: subject.headers.get("content-type"), digest: digest(subjectBytes), size: subjectBytes.length },
  }));
  const d = digest(manifest);
  const put = await fetch(`${base}/v2/${name}/manifests/${d}`, { method: "PUT", body: manifest, headers: { ...auth, "content-type": "application/vnd.oci.image.manifest.v1+json" } });
  assert.equal(put.status, 201, await put.text());
  return d;
}
