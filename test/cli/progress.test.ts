// The build/pull progress output: a bar redrawn in place on a terminal, plain lines otherwise.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatBytes, progressRenderer } from "../../cli/progress.js";

function stream(isTTY: boolean): NodeJS.WriteStream & { text: string } {
  const s = {
    isTTY,
    text: "",
    write(chunk: string) {
      s.text += chunk;
      return true;
    },
  };
  return s as unknown as NodeJS.WriteStream & { text: string };
}

function copyThenFinish(out: NodeJS.WriteStream): void {
  const p = progressRenderer(out);
  for (const completed of [0, 500_000, 1_000_000, 2_000_000]) p({ status: "copying file", total: 2_000_000, completed });
  p({ status: "creating new layer sha256:abc" });
  p({ status: "writing manifest" });
  p({ status: "success" });
  p.done();
}

test("not a terminal: one plain line per step, a transfer only once with its final size", () => {
  const out = stream(false);
  copyThenFinish(out);
  assert.equal(out.text, "copying file 2.0 MB 100%\ncreating new layer sha256:abc\nwriting manifest\nsuccess\n");
});

test("a terminal: the bar is redrawn in place with \\r and ends full, then the next lines follow", () => {
  const out = stream(true);
  copyThenFinish(out);
  const [bar, ...rest] = out.text.split("\n");
  assert.deepEqual(rest, ["creating new layer sha256:abc", "writing manifest", "success", ""]);
  const frames = bar!.split("\r").slice(1);
  assert.ok(bar!.startsWith("\r") && frames.length >= 2, JSON.stringify(bar));
  assert.match(frames[0]!, /^copying file {31}\s+0% 0 B\/2\.0 MB\s*$/);
  assert.equal(frames.at(-1), `copying file ${"█".repeat(30)} 100% 2.0 MB/2.0 MB`);
});

test("done() closes an unfinished bar with a newline; nothing is written when nothing happened", () => {
  const out = stream(true);
  const p = progressRenderer(out);
  p({ status: "pulling 0123456789ab", total: 100, completed: 40 });
  p.done();
  assert.match(out.text, /^\rpulling 0123456789ab █{12} {18}\s+40% 40 B\/100 B\n$/);
  const idle = stream(true);
  progressRenderer(idle).done();
  assert.equal(idle.text, "");
});

test("sizes are printed in decimal units like Ollama's", () => {
  assert.deepEqual(
    [0, 999, 1000, 292_403, 1_500_000, 2_500_000_000, 3e12].map(formatBytes),
    ["0 B", "999 B", "1.0 KB", "292 KB", "1.5 MB", "2.5 GB", "3.0 TB"],
  );
});
