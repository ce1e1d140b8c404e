/**
 * A pull or push in a process of its own, for the SIGKILL tests:
 * `node --import tsx child.ts pull|push STORE_ROOT NAME SETTINGS_JSON`. Prints one line per event.
 */
import { LocalStore } from "../../../core/store.js";
import { RegistryClient } from "../../../registry/client/index.js";

const [op, root, name, settings] = process.argv.slice(2);
const client = new RegistryClient(JSON.parse(settings ?? "{}"));
const store = new LocalStore(root!);
const onProgress = (e: unknown) => process.stdout.write(JSON.stringify(e) + "\n");
try {
  if (op === "pull") await client.pull(store, name!, { insecure: true, onProgress });
  else await client.push(store, name!, { insecure: true, onProgress });
} finally {
  await client.close();
}
