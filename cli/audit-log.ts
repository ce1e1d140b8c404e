/**
 * `--audit-log FILE`: the registry's audit events (registry/server/audit.ts) as JSON lines appended to a
 * file. Each batch of lines (what arrived while the previous write ran) is written by opening the path
 * anew in append mode, so log rotation needs no signal: after a rename (logrotate's default `create`) the
 * next batch starts the new file at the path, and `copytruncate` works too, every write going to the end.
 * Lines waiting for the disk are bounded (16 MiB); past that they are counted, and the count is written
 * as a line of its own (`"action":"audit-lines-dropped"`) when writing catches up.
 */
import { appendFileSync } from "node:fs";
import { appendFile } from "node:fs/promises";
import { resolve } from "node:path";
import { MfError } from "../core/errors.js";
import type { AuditEvent, AuditSink } from "../registry/server/audit.js";

const MAX_PENDING_BYTES = 16 << 20;

export interface AuditLog {
  path: string;
  sink: AuditSink;
  /** Writes what is pending and stops. */
  close(): Promise<void>;
}

export function openAuditLog(file: string, onError: (e: Error) => void): AuditLog {
  const path = resolve(file);
  try {
    appendFileSync(path, "", { mode: 0o640 });
  } catch (e) {
    throw new MfError("BAD_REQUEST", `--audit-log ${file}: cannot append to it (${(e as Error).message})`);
  }
  let pending: string[] = [];
  let pendingBytes = 0;
  let dropped = 0;
  let writing: Promise<void> | null = null;
  let failing = false;

  const write = async (): Promise<void> => {
    while (pending.length || dropped) {
      if (dropped) {
        pending.push(`${JSON.stringify({ time: new Date().toISOString(), action: "audit-lines-dropped", count: dropped })}\n`);
        dropped = 0;
      }
      const batch = pending.join("");
      pending = [];
      pendingBytes = 0;
      try {
        await appendFile(path, batch, { flag: "a", mode: 0o640 });
        failing = false;
      } catch (e) {
        if (!failing) onError(e as Error);
        failing = true;
        dropped += batch.split("\n").length - 1;
        return;
      }
    }
  };
  const kick = () => {
    writing ??= write().finally(() => {
      writing = null;
      if (pending.length) kick();
    });
  };

  return {
    path,
    sink: (event: AuditEvent) => {
      const line = `${JSON.stringify(event)}\n`;
      if (pendingBytes + line.length > MAX_PENDING_BYTES) {
        dropped++;
        return;
      }
      pending.push(line);
      pendingBytes += line.length;
      kick();
    },
    async close() {
      while (writing) await writing;
      if (pending.length || dropped) {
        kick();
        while (writing) await writing;
      }
    },
  };
}
