/** Scrapes a Prometheus endpoint and reads its exposition text (for the metrics tests of both servers). */
import { strict as assert } from "node:assert";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of an exposition text (comments skipped); label values unescaped. */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    assert.ok(m, `not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
    for (let l; (l = re.exec(m[2] ?? "")); ) labels[l[1]!] = l[2]!.replace(/\\n/g, "\n").replace(/\\(["\\])/g, "$1");
    const v = m[3]!;
    out.push({ name: m[1]!, labels, value: v === "+Inf" ? Infinity : v === "-Inf" ? -Infinity : Number(v) });
  }
  return out;
}

/** A scrape: its text and the sum of the samples named `name` whose labels include `labels`. */
export class Scrape {
  readonly samples: Sample[];
  constructor(readonly text: string) {
    this.samples = parseExposition(text);
  }

  has(name: string): boolean {
    return this.samples.some((s) => s.name === name);
  }

  value(name: string, labels: Record<string, string> = {}): number {
    return this.samples
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((sum, s) => sum + s.value, 0);
  }
}

/** GET `url` (a /metrics endpoint): 200 with the exposition content type. */
export async function scrape(url: string, headers: Record<string, string> = {}): Promise<Scrape> {
  const res = await fetch(url, { headers });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return new Scrape(text);
}

/**
 * A scrape taken once every earlier request has been counted: requests are counted when their response
 * closes, which the server may see just after the client has read the answer; `inFlight` (the gauge) is
 * then down to `self` (1 when the scrape is itself a request of the same server).
 */
export async function settledScrape(url: string, inFlight: string, self: number, headers: Record<string, string> = {}): Promise<Scrape> {
  for (let i = 0; ; i++) {
    const s = await scrape(url, headers);
    if (s.value(inFlight) === self) return s;
    assert.ok(i < 500, `${inFlight} stays at ${s.value(inFlight)}, not ${self}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
