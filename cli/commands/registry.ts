/**
 * `mf registry serve` runs the OCI registry on a filesystem root or an S3 bucket (`--storage s3://…`, where
 * any number of replicas may serve the same registry); `mf registry gc` collects untagged manifests (and with
 * `--retain`, the tags no retention rule keeps: registry/server/retention.ts) and
 * unreferenced blobs; `mf registry scrub` re-hashes blobs and checks manifests, changing nothing.
 * Every flag can also come from `--config FILE` (YAML, same keys); flags win over the file.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import yargs, { type Argv, type CommandModule } from "yargs";
import { createRequire } from "node:module";
import { MfError } from "../../core/errors.js";
import { collectGarbage } from "../../registry/server/gc.js";
import { recordGcRun } from "../../registry/server/gc-stats.js";
import { describeProblem, scrub } from "../../registry/server/scrub.js";
import { createRegistryServer } from "../../registry/server/server.js";
import { UPLOAD_FAULT_POINTS, type FaultHook, type UploadFaultPoint } from "../../registry/server/upload-sessions.js";
import { describeRetention, parseRetention } from "../../registry/server/retention.js";
import { parseDuration, parseSize } from "../../registry/server/units.js";
import { openAuditLog } from "../audit-log.js";
import { mirrorOptions, openMirror, type MirrorArgs } from "../registry-mirror.js";
import { last, openStorage, storageOptions, type StorageArgs } from "../registry-storage.js";
import { listenMetrics, metricsRegistry, splitHostPort, type MetricsListener } from "../metrics.js";
import { registryAdminCommands } from "./registry-admin.js";

interface ServeArgs extends StorageArgs, MirrorArgs {
  addr: string;
  "public-url"?: string;
  "trust-proxy"?: string | string[];
  "tls-cert"?: string;
  "tls-key"?: string;
  "secret-file"?: string;
  redirect: boolean;
  delete: boolean;
  "upload-expiry": string;
  "upload-checkpoint": string;
  "body-limit": string;
  "signed-url-ttl": string;
  "idle-timeout": string;
  "shutdown-grace": string;
  access?: string;
  service: string;
  "token-ttl": string;
  "allow-foreign-layers"?: string;
  metrics?: boolean;
  "metrics-addr"?: string;
  "audit-log"?: string;
  "pull-record-interval": string;
  "require-signed"?: string | string[];
  verbose?: boolean;
  web: boolean;
  "web-session-ttl": string;
}

interface GcArgs extends StorageArgs {
  grace: string;
  "dry-run": boolean;
  "upload-expiry": string;
  /** RULE=VALUE strings; from --config also a mapping */
  retain?: unknown;
  "audit-log"?: string;
}

function yamlConfig(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new MfError("FILE_NOT_FOUND", `cannot read config ${path}: ${(e as Error).message}`);
  }
  // yaml is required here, on use: a registry started without --config does not keep it resident
  const YAML = createRequire(import.meta.url)("yaml") as typeof import("yaml");
  const doc = YAML.parse(text) as unknown;
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) throw new MfError("BAD_REQUEST", `${path}: expected a mapping of settings`);
  return doc as Record<string, unknown>;
}

type RegistryCommandName = "serve" | "gc" | "scrub";

function rootOption<T>(y: Argv<T>, command: RegistryCommandName) {
  return storageOptions(
    y
      .option("root", { type: "string", describe: "storage directory", default: join(homedir(), ".mf", "registry") })
      .config("config", "YAML file with the same keys as the flags (one file may serve every mf registry command)", (path: string) =>
        forCommand(yamlConfig(path), command),
      ),
  );
}

let commandKeys: Map<RegistryCommandName, Set<string>> | undefined;

/** The option names of each `mf registry` command that reads the config file, from their builders. */
function registryCommandKeys(): Map<RegistryCommandName, Set<string>> {
  if (commandKeys) return commandKeys;
  commandKeys = new Map();
  for (const [name, c] of [["serve", serveCommand], ["gc", gcCommand], ["scrub", scrubCommand]] as const) {
    const y = yargs([]);
    (c.builder as (y: Argv) => Argv)(y);
    // yargs's own record of the options a builder declared (public on the instance, absent from its typings)
    const declared = (y as unknown as { getOptions(): { key: Record<string, unknown> } }).getOptions().key;
    commandKeys.set(name, new Set(Object.keys(declared)));
  }
  return commandKeys;
}

/**
 * One config file for the whole registry: serve reads `addr`, gc reads `retain`. A key that another
 * `mf registry` command declares is left out for this one; any other unknown key still fails (strict).
 */
function forCommand(config: Record<string, unknown>, command: RegistryCommandName): Record<string, unknown> {
  const keys = registryCommandKeys();
  const mine = keys.get(command)!;
  const known = new Set([...keys.values()].flatMap((k) => [...k]));
  return Object.fromEntries(Object.entries(config).filter(([k]) => mine.has(k) || !known.has(k)));
}

/**
 * The HMAC key. On a filesystem root it is generated into the file (0600) on first start and reused
 * afterwards. With `mustExist` (S3, where replicas share the key) a missing file stops the start: each
 * replica would otherwise make its own key and refuse the others' upload locations and tokens.
 */
export function loadSecret(path: string, mustExist = false): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  if (mustExist) {
    throw new MfError(
      "FILE_NOT_FOUND",
      `--secret-file ${path} does not exist. Replicas of one registry must share one secret: create it once ` +
        `(openssl rand -hex 32 > ${path} && chmod 600 ${path}) and give every replica the same file`,
    );
  }
  mkdirSync(dirname(path), { recursive: true });
  try {
    writeFileSync(path, randomBytes(32).toString("hex") + "\n", { mode: 0o600, flag: "wx" });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  }
  return readFileSync(path);
}

/**
 * Test-only crash injection: `MF_FAULT=upload-finish:after-move[,…]` makes the registry SIGKILL itself
 * when it reaches that step (the fault tests restart it on the same storage and check what survived).
 */
export function faultHook(spec: string | undefined): FaultHook | undefined {
  if (!spec) return undefined;
  const points = new Set(spec.split(",").map((p) => p.trim()).filter(Boolean));
  for (const p of points) {
    if (!(UPLOAD_FAULT_POINTS as readonly string[]).includes(p)) {
      throw new MfError("BAD_REQUEST", `MF_FAULT: unknown fault point "${p}" (known: ${UPLOAD_FAULT_POINTS.join(", ")})`);
    }
  }
  return (point: UploadFaultPoint) => {
    if (!points.has(point)) return;
    writeSync(2, `mf registry: MF_FAULT ${point}: killing this process\n`);
    process.kill(process.pid, "SIGKILL");
  };
}

/** `--allow-foreign-layers REGEX`: urls of non-distributable layers that may stay unpushed. */
function foreignLayerPolicy(text: string | string[] | undefined): RegExp | undefined {
  if (text === undefined) return undefined;
  const source = last(text);
  try {
    return new RegExp(source);
  } catch (e) {
    throw new MfError("BAD_REQUEST", `--allow-foreign-layers: ${JSON.stringify(source)} is not a regular expression (${(e as Error).message})`);
  }
}

/** Listens, turning the usual failures into a message that names the address and what to do. */
async function listen(app: { listen(o: { host: string; port: number }): Promise<string> }, addr: string, host: string, port: number): Promise<string> {
  try {
    return await app.listen({ host, port });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE") {
      throw new MfError("BAD_REQUEST", `cannot listen on ${addr}: the address is already in use (another registry or program holds port ${port}); stop it, or pick another port with --addr HOST:PORT (port 0: any free port)`, { cause: e });
    }
    if (code === "EACCES") {
      throw new MfError("BAD_REQUEST", `cannot listen on ${addr}: permission denied (ports below 1024 need privileges); pick another port with --addr HOST:PORT`, { cause: e });
    }
    if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND" || code === "EAI_AGAIN") {
      const why = code === "EADDRNOTAVAIL" ? "is not an address of this machine" : "does not resolve to an address";
      throw new MfError("BAD_REQUEST", `cannot listen on ${addr}: ${host} ${why}; give one of this machine's with --addr HOST:PORT (0.0.0.0: every interface)`, { cause: e });
    }
    throw e;
  }
}

async function serve(args: ServeArgs): Promise<void> {
  const allowForeignLayers = foreignLayerPolicy(args["allow-foreign-layers"]);
  const publicUrl = args["public-url"] === undefined ? undefined : last(args["public-url"]);
  if (args.access && !publicUrl) {
    throw new MfError(
      "BAD_REQUEST",
      "--access needs --public-url, the URL clients reach this registry at (e.g. --public-url https://registry.example.com): " +
        "signed token requests are verified against it, never against a request's Host header",
    );
  }
  // signature checks (node's crypto, ssh2) are loaded only when --require-signed turns them on
  const requireSignedSpecs = args["require-signed"] === undefined ? [] : [args["require-signed"]].flat().map(String);
  const tagGuard = requireSignedSpecs.length
    ? await import("../../registry/server/require-signed.js").then((m) => m.requireSigned(requireSignedSpecs.map(m.parseRequireSigned), {
        onReloadError: (path, e) => process.stderr.write(`mf registry: ${path} not reloaded: ${e.message}; the last good list stays in force\n`),
      }))
    : undefined;
  const opened = await openStorage(args);
  const secretFile = args["secret-file"] ?? (opened.root ? join(opened.root, "secret.key") : undefined);
  if (!secretFile) {
    opened.close();
    throw new MfError(
      "BAD_REQUEST",
      "with --storage s3://… give --secret-file: the replicas of one registry share its secret (upload locations, tokens); " +
        "make one with `openssl rand -hex 32 > registry.secret`",
    );
  }
  let secret: Buffer;
  try {
    secret = loadSecret(resolve(secretFile), !opened.root);
  } catch (e) {
    opened.close();
    throw e;
  }
  if ((args["tls-cert"] === undefined) !== (args["tls-key"] === undefined)) {
    throw new MfError("BAD_REQUEST", "--tls-cert and --tls-key go together");
  }
  const https = args["tls-cert"] && args["tls-key"]
    ? { cert: readFileSync(args["tls-cert"]), key: readFileSync(args["tls-key"]) }
    : undefined;
  const storage = opened.driver;
  // --metrics: GET /metrics here; --metrics-addr: there instead (prom-client is loaded only then)
  const metricsAddr = args["metrics-addr"] === undefined ? undefined : last(args["metrics-addr"]);
  const metrics = args.metrics === true || metricsAddr !== undefined
    ? (await import("../../registry/server/metrics.js")).createRegistryMetrics(await metricsRegistry())
    : undefined;
  let audit: ReturnType<typeof openAuditLog> | undefined;
  try {
    audit = args["audit-log"] === undefined ? undefined : openAuditLog(last(args["audit-log"]), (e) => process.stderr.write(`mf registry: cannot write the audit log: ${e.message}\n`));
  } catch (e) {
    opened.close();
    throw e;
  }
  // key-based auth (jose, ssh2) is loaded only when an access file turns it on
  const keyed = args.access
    ? await Promise.all([import("../../registry/server/access-file.js"), import("../../registry/server/token-auth.js")])
    : undefined;
  const access = args.access && keyed
    ? await keyed[0].AccessFile.open(resolve(args.access), {
        onReload: (p) => process.stderr.write(`mf registry: access file reloaded (${keyed[0].describePolicy(p)})\n`),
        onError: (e, kept) => process.stderr.write(`mf registry: access file not reloaded: ${e.message}; the last good policy stays in force (${keyed[0].describePolicy(kept)})\n`),
      })
    : undefined;
  const auth = access && keyed && publicUrl
    ? keyed[1].createTokenAuth({
        access, secret, storage, publicUrl, service: args.service,
        tokenTtlS: Math.max(1, Math.round(parseDuration(args["token-ttl"]) / 1000)),
        onDenied: (d) => {
          metrics?.denied(d.action);
          process.stderr.write(`mf registry: denied ${d.action}${d.repository ? ` on ${d.repository}` : ""} for ${d.who}: ${d.reason}\n`);
        },
      })
    : undefined;
  // the page's API shows models as mf show does (builder): loaded only when the page is on
  const web = args.web
    ? (await import("../../registry/server/ui/index.js")).webPage({ access, sessionTtlMs: parseDuration(args["web-session-ttl"]) })
    : undefined;
  const mirror = await openMirror(args, storage, parseSize(args["body-limit"]));
  const app = createRegistryServer({
    mirror,
    storage,
    auth,
    web,
    secret,
    logger: args.verbose === true,
    publicUrl,
    // a list from flags, a string or a list from --config
    trustProxy: args["trust-proxy"] === undefined ? undefined : [args["trust-proxy"]].flat().map(String),
    redirect: args.redirect,
    allowDelete: args.delete,
    uploadExpiryMs: parseDuration(args["upload-expiry"]),
    uploadCheckpointBytes: parseSize(args["upload-checkpoint"]),
    fault: faultHook(process.env.MF_FAULT),
    manifestMaxBytes: parseSize(args["body-limit"]),
    signedUrlTtlMs: parseDuration(args["signed-url-ttl"]),
    idleTimeoutMs: parseDuration(args["idle-timeout"]),
    allowForeignLayers,
    audit: audit?.sink,
    pullRecordIntervalMs: parseDuration(args["pull-record-interval"]),
    tagGuard,
    https,
    metrics,
    serveMetrics: metricsAddr === undefined,
  });
  const addr = last(args.addr);
  const { host, port } = splitHostPort(addr, "--addr");
  let metricsListener: MetricsListener | undefined;
  const address = await listen(app, addr, host, port)
    .then(async (a) => {
      if (metrics && metricsAddr !== undefined) metricsListener = await listenMetrics(metrics.registry, metricsAddr);
      return a;
    })
    .catch(async (e: unknown) => {
      await app.close();
      access?.close();
      opened.close();
      await audit?.close();
      throw e;
    });
  process.stdout.write(
    `mf registry listening on ${address} (${opened.root ? "root " : "storage "}${opened.describe}${access ? `, access ${access.path}` : ""}${requireSignedSpecs.length ? `, signatures required: ${requireSignedSpecs.join(" ")}` : ""})\n` +
      (metrics ? `mf registry: metrics at ${metricsListener?.address ?? address}/metrics\n` : ""),
  );
  for (const line of mirror?.describe() ?? []) process.stdout.write(`mf registry: mirror ${line}\n`);

  const graceMs = parseDuration(args["shutdown-grace"]);
  await new Promise<void>((done) => {
    const stop = (signal: string) => {
      process.stderr.write(`mf registry: ${signal}: finishing in-flight requests (up to ${graceMs} ms)\n`);
      // In-flight uploads still running at the deadline are cut; their offsets are persisted, so they resume.
      const timer = setTimeout(() => app.server.closeAllConnections(), graceMs);
      Promise.all([app.close(), metricsListener?.close()]).finally(async () => {
        access?.close();
        opened.close();
        clearTimeout(timer);
        await audit?.close();
        done();
      });
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}

async function gc(args: GcArgs): Promise<void> {
  const retention = parseRetention(args.retain) ?? undefined;
  const graceMs = parseDuration(args.grace);
  const dryRun = args["dry-run"];
  const audit = args["audit-log"] === undefined || dryRun
    ? undefined
    : openAuditLog(last(args["audit-log"]), (e) => process.stderr.write(`mf registry gc: cannot write the audit log: ${e.message}\n`));
  const record = (action: "retain-delete-tag" | "gc-delete-manifest", repository: string, reference: string, digest: string | null) =>
    audit?.sink({ time: new Date().toISOString(), who: "mf registry gc", action, repository, reference, ...(digest ? { digest } : {}), status: 0 });
  const opened = await openStorage(args);
  if (retention) process.stdout.write(`retention: ${describeRetention(retention)}\n`);
  const verb = dryRun ? "would remove" : "removed";
  const report = await collectGarbage({
    storage: opened.driver,
    graceMs,
    dryRun,
    retention,
    uploadExpiryMs: parseDuration(args["upload-expiry"]),
    onTag: (repository, tag, digest) => {
      process.stdout.write(`${verb} tag ${repository}:${tag}${digest ? ` (${digest})` : ""}\n`);
      record("retain-delete-tag", repository, tag, digest);
    },
    onManifest: (repository, digest) => {
      process.stdout.write(`${verb} manifest ${repository}@${digest}\n`);
      record("gc-delete-manifest", repository, digest, digest);
    },
    onSweep: (digest, size) => process.stdout.write(`${verb} ${digest} (${size} bytes)\n`),
  })
    .then(async (r) => {
      // what the serving registry reports as gc metrics (gc-stats.ts); a failure here undoes nothing gc did
      if (!args["dry-run"]) await recordGcRun(opened.driver, r).catch((e: Error) => process.stderr.write(`mf registry gc: figures not recorded for metrics: ${e.message}\n`));
      return r;
    })
    .finally(async () => {
      opened.close();
      await audit?.close();
    });
  const removed = args["dry-run"] ? "to remove" : "removed";
  const extra = [
    retention ? `, ${report.tagsRemoved} tags ${removed} by retention` : "",
    report.linksRemoved ? `, ${report.linksRemoved} unused repository links removed` : "",
    report.leftoversRemoved ? `, ${report.leftoversRemoved} leftovers of crashes removed` : "",
  ].join("");
  process.stdout.write(
    `${report.manifests} manifests kept, ${report.manifestsRemoved} untagged manifests ${removed}, ${report.markedBlobs} blobs in use, ` +
      `${report.sweptBlobs} blobs ${removed} (${report.sweptBytes} bytes), ` +
      `${report.keptYoung} unreferenced kept (younger than ${args.grace}), ${report.uploadsRemoved} expired uploads removed${extra}\n`,
  );
}

async function runScrub(args: StorageArgs): Promise<void> {
  const opened = await openStorage(args);
  const report = await scrub({
    storage: opened.driver,
    onProblem: (p) => process.stdout.write(`${describeProblem(p)}\n`),
  }).finally(() => opened.close());
  const n = report.problems.length;
  process.stdout.write(
    `scrubbed ${report.blobs} blobs (${report.bytes} bytes), ${report.manifests} manifests, ${report.tags} tags: ` +
      `${n ? `${n} problem${n === 1 ? "" : "s"}` : "no problems"}\n`,
  );
  if (n) process.exitCode = 1;
}

const serveCommand: CommandModule<object, ServeArgs> = {
  command: "serve",
  describe: "serve the OCI distribution API",
  builder: (y) =>
    mirrorOptions(rootOption(y, "serve"))
      .option("addr", { type: "string", default: "127.0.0.1:5000", describe: "HOST:PORT to listen on (port 0: any free port)" })
      .option("public-url", { type: "string", describe: "how clients reach the registry; required with --access (token signatures are checked against it). Default for Locations: the request's Host" })
      .option("trust-proxy", { type: "string", array: true, describe: "proxy addresses (IP, CIDR, loopback) whose X-Forwarded-Host/-Proto/-For are believed (default: none)" })
      .option("tls-cert", { type: "string", describe: "PEM certificate (with --tls-key: serve HTTPS)" })
      .option("tls-key", { type: "string", describe: "PEM private key" })
      .option("secret-file", { type: "string", describe: "HMAC key for upload locations, signed URLs and tokens (default ROOT/secret.key, generated when missing; on S3 required and must exist)" })
      .option("redirect", { type: "boolean", default: true, describe: "blob GET answers 307 to a signed URL (stock Ollama needs it)" })
      .option("delete", { type: "boolean", default: true, describe: "allow manifest and blob deletes" })
      .option("upload-expiry", { type: "string", default: "24h", describe: "remove upload sessions idle this long" })
      .option("upload-checkpoint", { type: "string", default: "32MiB", describe: "persist a streaming upload PATCH's offset every this many bytes (S3: at part ends)" })
      .option("body-limit", { type: "string", default: "8MiB", describe: "largest manifest accepted (blobs are unlimited)" })
      .option("signed-url-ttl", { type: "string", default: "15m", describe: "lifetime of redirect URLs" })
      .option("idle-timeout", { type: "string", default: "2m", describe: "close connections silent this long" })
      .option("shutdown-grace", { type: "string", default: "10s", describe: "on SIGTERM, wait this long for in-flight requests" })
      .option("access", { type: "string", describe: "access file (YAML: keys, API keys, anonymous rules); turns key-based auth on, reloaded on change" })
      .option("service", { type: "string", default: "mf-registry", describe: "service name in auth challenges and tokens (the same on every replica)" })
      .option("token-ttl", { type: "string", default: "5m", describe: "lifetime of bearer tokens" })
      .option("metrics", { type: "boolean", default: false, describe: "Prometheus metrics at GET /metrics on --addr (with --access: for any key the access file knows, as GET /v2/)" })
      .option("metrics-addr", { type: "string", describe: "HOST:PORT to serve GET /metrics on instead of --addr (turns metrics on; the safe choice: no auth, keep it internal)" })
      .option("web", { type: "boolean", default: true, describe: "serve the web page at / (read-only; shows what each visitor may pull)" })
      .option("web-session-ttl", { type: "string", default: "12h", describe: "how long a sign-in to the web page lasts" })
      .option("audit-log", { type: "string", describe: "append every push, delete and denial to this file as JSON lines (who, action, repository, reference, digest, status; never a secret)" })
      .option("pull-record-interval", { type: "string", default: "1h", describe: "record a manifest's last pull at most this often (for gc --retain pulled-within=…); 0: never" })
      .option("require-signed", {
        type: "string",
        array: true,
        describe: "NAMESPACE=ALLOWED_SIGNERS: a tag in NAMESPACE may only point at a manifest signed (mf sign) by a key in that OpenSSH allowed_signers file; repeatable",
      })
      .option("allow-foreign-layers", {
        type: "string",
        describe: "accept manifests whose non-distributable (foreign) layers were never pushed, when every one of their urls matches this regular expression (off by default)",
      }) as unknown as Argv<ServeArgs>,
  handler: serve,
};

const gcCommand: CommandModule<object, GcArgs> = {
  command: "gc",
  describe: "remove untagged manifests and the blobs no manifest references, and with --retain the tags no rule keeps (safe while serving)",
  builder: (y) =>
    rootOption(y, "gc")
      .option("grace", { type: "string", default: "1h", describe: "keep untagged manifests and unreferenced blobs written or used more recently than this (longer than any push)" })
      .option("dry-run", { type: "boolean", default: false, describe: "only report" })
      .option("upload-expiry", { type: "string", default: "24h", describe: "also remove upload sessions idle this long" })
      .option("retain", {
        type: "string",
        array: true,
        describe: "retention rule, repeatable: keep-last=N (most recent tags per repository), keep=GLOB[,GLOB] (tags to keep), " +
          "untagged-older-than=DURATION, pulled-within=DURATION; with keep-last or keep, every other tag is deleted",
      })
      .option("audit-log", { type: "string", describe: "append what gc and retention remove to this audit log (JSON lines)" }) as unknown as Argv<GcArgs>,
  handler: gc,
};

const scrubCommand: CommandModule<object, StorageArgs> = {
  command: "scrub",
  describe: "re-hash every blob and check every manifest; list corrupt blobs and missing ones, change nothing (exit 1 on problems)",
  builder: (y) => rootOption(y, "scrub") as unknown as Argv<StorageArgs>,
  handler: runScrub,
};

export const registryCommand: CommandModule<object, object> = {
  command: "registry <command>",
  describe: "run an OCI registry (serve, gc, scrub, key, ls, rm)",
  builder: (y) => {
    let out = y.command(serveCommand).command(gcCommand).command(scrubCommand);
    for (const c of registryAdminCommands) out = out.command(c as CommandModule<object, object>);
    return out.demandCommand(1);
  },
  handler: () => {},
};
