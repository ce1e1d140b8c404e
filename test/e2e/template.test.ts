/** `mf template render` through the real binary (dist/, built by `npm run build`). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { TINY, writeLlamaGguf } from "../../fixtures/gguf/index.js";
import { mf } from "../helpers/mf.js";
import { withTmp } from "../helpers/tmp.js";

const CHATML = `{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
`;

test("render a template on JSON data: stdout exactly the output", async () => {
  await withTmp("tpl", async (dir) => {
    await writeFile(join(dir, "t.tmpl"), "{{ .Name }} has {{ len .Items }} items: {{ range $i, $e := .Items }}{{ if $i }}, {{ end }}{{ $e }}{{ end }}{{ .Absent }}");
    await writeFile(join(dir, "d.json"), JSON.stringify({ Name: "cart", Items: ["a", 2, 1.5] }));
    const r = await mf(["template", "render", "--template-file", join(dir, "t.tmpl"), "--data-file", join(dir, "d.json")]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "cart has 3 items: a, 2, 1.5<no value>");
    assert.equal(r.stderr, "");
  });
});

test("render messages as /api/chat would, tools included", async () => {
  await withTmp("tpl", async (dir) => {
    await writeFile(join(dir, "t.tmpl"), CHATML + "{{ range .Tools }}{{ .Function.Name }}{{ end }}");
    await writeFile(
      join(dir, "m.json"),
      JSON.stringify({
        messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }, { role: "user", content: "there" }],
        tools: [{ type: "function", function: { name: "lookup", parameters: { type: "object", properties: {} } } }],
      }),
    );
    const r = await mf(["template", "render", "--template-file", join(dir, "t.tmpl"), "--messages-file", join(dir, "m.json")]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi\n\nthere<|im_end|>\n<|im_start|>assistant\nlookup");
  });
});

test("a template error goes to stderr with its line:column, exit status 1", async () => {
  await withTmp("tpl", async (dir) => {
    await writeFile(join(dir, "bad.tmpl"), "ok\n  {{ if .X }}{{ nope .Y }}{{ end }}");
    const r = await mf(["template", "render", "--template-file", join(dir, "bad.tmpl")]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /template: 2:17: function "nope" not defined/);

    await writeFile(join(dir, "run.tmpl"), "{{ .A.B }}");
    await writeFile(join(dir, "d.json"), "{}");
    const e = await mf(["template", "render", "--template-file", join(dir, "run.tmpl"), "--data-file", join(dir, "d.json")]);
    assert.equal(e.code, 1);
    assert.match(e.stderr, /template: 1:4: executing at <\.A\.B>: nil pointer evaluating interface \{\}\.B/);
  });
});

test("--model takes the template, SYSTEM and MESSAGEs from a built image", async () => {
  await withTmp("tpl", async (dir) => {
    const ctx = join(dir, "ctx");
    await mkdir(ctx, { recursive: true });
    await writeLlamaGguf(join(ctx, "tiny.gguf"), TINY);
    await writeFile(
      join(ctx, "Modelfile"),
      `FROM ./tiny.gguf\nTEMPLATE """${CHATML}"""\nSYSTEM You are Mario.\nMESSAGE user Who are you?\nMESSAGE assistant It's-a me!\n`,
    );
    const env = { MF_MODELS: join(dir, "models"), MF_HOME: join(dir, "home"), HOME: join(dir, "home") };
    const b = await mf(["build", "-t", "mario", ctx], { env });
    assert.equal(b.code, 0, b.stderr);
    await writeFile(join(dir, "m.json"), JSON.stringify([{ role: "user", content: "Jump!" }]));
    const r = await mf(["template", "render", "--model", "mario", "--messages-file", join(dir, "m.json")], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      "<|im_start|>system\nYou are Mario.<|im_end|>\n<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\nIt's-a me!<|im_end|>\n<|im_start|>user\nJump!<|im_end|>\n<|im_start|>assistant\n",
    );
    const missing = await mf(["template", "render", "--model", "nobody", "--data-file", join(dir, "m.json")], { env });
    assert.equal(missing.code, 1);
  });
});
