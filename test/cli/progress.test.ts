// The build/pull progress output: a bar redrawn in place on a terminal, plain lines otherwise.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatBytes, formatDuration, progressRenderer } from "../../cli/progress.js";

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

/** What a terminal shows after `text`: printable characters, \r, \n, ESC[nA (cursor up), ESC[K (clear to the end of the line). */
function screen(text: string): string[] {
  const rows = [""];
  let row = 0;
  let col = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "\r") col = 0;
    else if (c === "\n") {
      row++;
      col = 0;
      if (rows.length <= row) rows.push("");
    } else if (c === "\x1b") {
      const m = /^\x1b\[(\d*)([AK])/.exec(text.slice(i));
      assert.ok(m, `unexpected escape ${JSON.stringify(text.slice(i, i + 8))}`);
      if (m[2] === "A") row = Math.max(0, row - Number(m[1] || 1));
      else rows[row] = rows[row]!.slice(0, col);
      i += m[0].length - 1;
    } else {
      const r = rows[row]!;
      rows[row] = r.slice(0, col).padEnd(col) + c + r.slice(col + 1);
      col++;
    }
  }
  return rows.map((r) => r.trimEnd());
}

test("a terminal: concurrent transfers get a bar each, all redrawn in place, then the status lines", () => {
  const out = stream(true);
  let t = 0;
  const p = progressRenderer(out, () => t);
  const a = { status: "pulling aaaaaaaaaaaa", digest: "sha256:aaaa", total: 4_000_000 };
  const b = { status: "pulling bbbbbbbbbbbb", digest: "sha256:bbbb", total: 2_000_000 };
  for (let i = 0; i <= 4; i++) {
    t += 250;
    p({ ...a, completed: i * 1_000_000 });
    p({ ...b, completed: Math.min(2, i) * 1_000_000 });
  }
  p({ status: "verifying sha256 digest" });
  p({ status: "success" });
  p.done();
  const shown = screen(out.text);
  assert.equal(shown.length, 5, JSON.stringify(shown));
  assert.match(shown[0]!, /^pulling aaaaaaaaaaaa █{30} 100% 4\.0 MB\/4\.0 MB [\d.]+ MB\/s$/);
  assert.match(shown[1]!, /^pulling bbbbbbbbbbbb █{30} 100% 2\.0 MB\/2\.0 MB [\d.]+ MB\/s$/);
  assert.deepEqual(shown.slice(2), ["verifying sha256 digest", "success", ""]);
});

test("a terminal: the bar shows the rate and the time left, counting only bytes moved in this run", () => {
  const out = stream(true);
  let t = 1_000;
  const p = progressRenderer(out, () => t);
  const ev = { status: "pulling 0123456789ab", digest: "sha256:0123", total: 10_000_000 };
  p({ ...ev, completed: 5_000_000 }); // resumed: half was there before
  t += 200;
  p({ ...ev, completed: 5_100_000 });
  assert.match(screen(out.text)[0]!, /51% 5\.1 MB\/10\.0 MB$/, "no rate from a too short window");
  t += 800;
  p({ ...ev, completed: 6_000_000 });
  assert.match(screen(out.text)[0]!, / 60% 6\.0 MB\/10\.0 MB 1\.0 MB\/s 4s$/);
  t += 1_000;
  p({ ...ev, completed: 10_000_000 });
  p.done();
  assert.deepEqual(screen(out.text), [`pulling 0123456789ab ${"█".repeat(30)} 100% 10.0 MB/10.0 MB 2.5 MB/s`, ""]);
});

test("times left read like Ollama's", () => {
  assert.deepEqual([0, 4.4, 59, 65, 3599, 3725].map(formatDuration), ["0s", "4s", "59s", "1m05s", "59m59s", "1h02m"]);
});
