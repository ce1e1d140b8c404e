/** The registry server's public surface. */
export { createRegistryServer, type RegistryServer, type RegistryServerOptions } from "./server.js";
export { allowAll, requestSubject, type AuthHook, type AuthorizeRequest, type RegistryAction } from "./auth.js";
export type { StorageDriver, StatInfo, ByteSpan, WriteAtOptions } from "./storage/driver.js";
export { FsDriver, type FsDriverOptions } from "./storage/fs.js";
export { S3Driver, parseS3Url, S3_MIN_PART, type S3DriverOptions } from "./storage/s3.js";
export { collectGarbage, type GcOptions, type GcReport } from "./gc.js";
export { AccessPolicy, apiKeyHash, ANONYMOUS } from "./access.js";
export { AccessFile, staticAccess, type AccessSource, type AccessFileOptions } from "./access-file.js";
export { createTokenAuth, type TokenAuth, type TokenAuthOptions } from "./token-auth.js";
