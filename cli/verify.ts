/**
 * Which pulls must be signed, and by whom: `mf pull --verify` (with `--allowed-signers FILE`), and the
 * `verify` section of `<home>/config.json`, one rule per registry, namespace or repository:
 *
 *   "verify": {
 *     "registry.example.com/team": "team.allowed_signers",
 *     "registry.example.com": { "allowedSigners": "/etc/mf/allowed_signers", "identity": "*@example.com" }
 *   }
 *
 * The longest rule that is the pulled repository (`host/namespace/model`) or a path prefix of it applies
 * (`*` applies to every registry); a relative path is relative to mf's home. With a rule, every pull of a
 * name under it is verified, `--verify` or not. `identity` is a principal the signing key's
 * allowed_signers line must match (as `ssh-keygen -Y verify -I`).
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { MfError } from "../core/errors.js";
import type { ModelRef } from "../core/reference.js";
import type { SignatureRecord, VerifyPolicy } from "../registry/client/index.js";
import { parseAllowedSigners } from "../registry/protocol/allowed-signers.js";
import { configPath, readConfig } from "./credentials.js";

export interface VerifyRule {
  scope: string;
  allowedSigners: string;
  identity?: string;
}

function expand(path: string, home: string): string {
  if (path === "~" || path.startsWith("~/")) return join(homedir(), path.slice(1));
  return isAbsolute(path) ? path : resolve(home, path);
}

/** The rules of `<home>/config.json`'s `verify` section; a malformed one is an error naming it. */
export function verifyRules(home: string): VerifyRule[] {
  const section = readConfig(home).verify;
  if (section === undefined) return [];
  const where = `${configPath(home)}: "verify"`;
  if (!section || typeof section !== "object" || Array.isArray(section)) throw new MfError("BAD_REQUEST", `${where} must map a registry, namespace or repository to an allowed_signers file`);
  return Object.entries(section as Record<string, unknown>).map(([scope, v]) => {
    const rule = typeof v === "string" ? { allowedSigners: v } : (v as { allowedSigners?: unknown; identity?: unknown } | null);
    if (!rule || typeof rule.allowedSigners !== "string" || (rule.identity !== undefined && typeof rule.identity !== "string")) {
      throw new MfError("BAD_REQUEST", `${where}: "${scope}" needs a path, or {"allowedSigners": PATH, "identity": PRINCIPAL}`);
    }
    return { scope: scope.toLowerCase().replace(/\/+$/, ""), allowedSigners: expand(rule.allowedSigners, home), ...(rule.identity ? { identity: rule.identity as string } : {}) };
  });
}

/** The rule for `repository` (`host/namespace/model`): the longest scope equal to it or a path prefix of it. */
export function ruleFor(rules: VerifyRule[], repository: string): VerifyRule | undefined {
  const repo = repository.toLowerCase();
  const fits = rules.filter((r) => r.scope === "*" || repo === r.scope || repo.startsWith(`${r.scope}/`));
  const weight = (r: VerifyRule) => (r.scope === "*" ? 0 : r.scope.length + 1);
  return fits.sort((a, b) => weight(b) - weight(a))[0];
}

/** Reads and parses an allowed_signers file for a policy. */
export function loadAllowedSigners(path: string, identity?: string): VerifyPolicy {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new MfError("FILE_NOT_FOUND", `cannot read allowed_signers ${path}: ${(e as Error).message}`);
  }
  return { allowed: parseAllowedSigners(text, path), ...(identity ? { identity } : {}) };
}

/**
 * The policy a pull of `ref` runs under: `--allowed-signers` (which implies --verify), else the config's
 * rule; undefined when neither asks for one. `--verify` with no allowed_signers anywhere is an error.
 */
export function pullPolicy(home: string, ref: ModelRef, flags: { verify?: boolean; allowedSigners?: string }): VerifyPolicy | undefined {
  const repository = `${ref.host}/${ref.namespace}/${ref.model}`.toLowerCase();
  if (flags.allowedSigners) return loadAllowedSigners(resolve(flags.allowedSigners));
  const rule = ruleFor(verifyRules(home), repository);
  if (rule) return loadAllowedSigners(rule.allowedSigners, rule.identity);
  if (flags.verify) {
    throw new MfError("BAD_REQUEST", `--verify: no allowed_signers for ${repository}: give --allowed-signers FILE, or add a rule to the "verify" section of ${configPath(home)}`);
  }
  return undefined;
}

/** How the CLI names a verified signature: who signed (principals and key), when, for which repository. */
export function describeSignature(s: SignatureRecord): string {
  const when = s.created ? ` at ${s.created}` : "";
  return `signed by ${s.signer.principals.join(",")} (${s.signer.keyType} ${s.signer.fingerprint})${when} for ${s.repository}`;
}
