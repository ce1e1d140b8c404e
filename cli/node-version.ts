/**
 * The oldest Node.js mf runs on, checked by the `mf` binary before it loads anything else: below it an
 * import fails at link time with a message that names no version (`node:zlib` has no `createZstdDecompress`
 * before 22.15, and `@fastify/static` requires an ES module, which Node allows from 22.12), so every
 * command would fail with it. package.json's `engines` says the same to npm.
 */
const NODE_FLOOR = { 22: 15, 23: 8 } as const;
const FLOOR = `22.${NODE_FLOOR[22]}`;

/** Why this Node.js is too old for mf (`version` as `process.versions.node` gives it), or undefined. */
export function nodeTooOld(version: string): string | undefined {
  const [major, minor] = version.split(".").map((x) => Number.parseInt(x, 10));
  if (!Number.isFinite(major) || !Number.isFinite(minor)) return undefined; // not a version we can read: let it try
  const floor = major in NODE_FLOOR ? NODE_FLOOR[major as keyof typeof NODE_FLOOR] : major < 22 ? Infinity : 0;
  if (minor >= floor) return undefined;
  return `Node.js ${version} is too old: mf needs Node.js ${FLOOR} or later on the 22 line, or 24 (${
    major < 22 ? `Node.js ${major} lacks what mf and its dependencies use` : `the zstd streams of node:zlib came in ${FLOOR}`
  }). Install a current Node.js 22 or 24 LTS and run mf again.`;
}
