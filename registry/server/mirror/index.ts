/** The pull-through mirror's public surface (registry/server/mirror/: the one part of the server that uses registry/client). */
export { Mirror, type MirrorOptions } from "./mirror.js";
export { parseMirrorFlag, checkMirror, assignAllowList, type MirrorSpec, type UpstreamCredentials } from "./config.js";
