/**
 * `mf demo` (what `npm start` runs): builds the embedded demo Modelfile with a generated tiny model into
 * a store of its own (`~/.mf/demo`, or `--dir`), lists and shows it, then serves that store behind the
 * Ollama API on MF_HOST (default 127.0.0.1:11434) and prints a curl line to try (`--no-serve`: stop
 * after showing it). Every command it prints works as printed from the repository after `npm ci`
 * (`npx mf …`, with MF_MODELS naming the demo store), and the curl line streams a short answer.
 */
import { join } from "node:path";
import type { CommandModule } from "yargs";
import { buildFromModelfile } from "../../builder/build.js";
import { describeModel, modelfileOf } from "../../builder/describe.js";
import { LocalStore } from "../../core/store.js";
import { displayRef, parseRef } from "../../core/reference.js";
import { DEMO_NAME, writeDemoContext } from "../../fixtures/demo.js";
import { cliContext } from "../context.js";
import { formatBytes, progressRenderer } from "../progress.js";
import { table, timeAgo } from "../table.js";
import { serveUntilSignal, startRuntime } from "./serve.js";

/** A word as a POSIX shell reads it back unchanged (a home directory may hold spaces). */
const shellWord = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`);

export const demoCommand: CommandModule<object, { dir?: string; serve?: boolean }> = {
  command: "demo",
  describe: "build the embedded demo model into a store of its own, describe it, and serve it",
  builder: (y) =>
    y
      .option("dir", { type: "string", describe: "demo directory (default ~/.mf/demo)" })
      .option("serve", { type: "boolean", default: true, describe: "serve the demo store afterwards (--no-serve: only build and show)" }) as never,
  handler: async (args) => {
    const ctx = cliContext();
    const dir = args.dir ?? join(ctx.config.home, "demo");
    const contextDir = join(dir, "context");
    const store = new LocalStore(join(dir, "models"));
    const out = (s: string) => process.stdout.write(s);
    // what a user types to do the same: `npx mf` (no `mf` on the PATH after `npm ci`) on the demo's store
    const cmd = (args: string) => `$ MF_MODELS=${shellWord(store.root)} npx mf ${args}\n`;
    out(`mf demo: generating a tiny model and its Modelfile in ${contextDir}\n`);
    const modelfile = await writeDemoContext(contextDir);
    out(`\n${cmd(`build -t ${DEMO_NAME} ${shellWord(contextDir)}`)}`);
    const progress = progressRenderer(process.stdout);
    const r = await buildFromModelfile(modelfile, { store, tags: [parseRef(DEMO_NAME)], contextDir, homeDir: ctx.homeDir, onProgress: progress });
    progress.done();
    out(`${r.digest}\n\n${cmd("list")}`);
    const models = await store.listModels();
    out(table(["NAME", "ID", "SIZE", "MODIFIED"], models.map((m) => [displayRef(m.ref), m.digest.slice(7, 19), formatBytes(m.size), timeAgo(m.modified)])));
    out(`\n${cmd(`show ${DEMO_NAME} --modelfile`)}`);
    out(modelfileOf(await describeModel(store, await store.readModel(DEMO_NAME))));
    out(`\nThe store is ${store.root}; point MF_MODELS at it to use the other commands on it.\n`);
    if (args.serve === false) return;
    // the header first: the server logs (JSON lines on stdout) from the moment it listens
    out(`\n${cmd("serve")}`);
    const rt = await startRuntime({ config: ctx.config, store, homeDir: ctx.homeDir, gpu: false });
    const base = rt.address.replace("0.0.0.0", "127.0.0.1");
    out(`mf serve: listening on ${rt.address} (Ctrl-C stops it)\n\nTry it in another terminal (the weights are random, so the answer is noise):\n`);
    // streamed, and short: the demo model rarely stops on its own
    out(`  curl ${base}/api/chat -d '{"model": "${DEMO_NAME}", "messages": [{"role": "user", "content": "Hello!"}], "options": {"num_predict": 32}}'\n`);
    out(`  MF_HOST=${base.replace(/^http:\/\//, "")} npx mf run ${DEMO_NAME} "Hello!"\n`);
    await serveUntilSignal(rt.close);
  },
};
