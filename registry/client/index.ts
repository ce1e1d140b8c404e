/** The registry client's public surface. */
export { RegistryClient, pullModel, pushModel, type RegistryClientOptions } from "./client.js";
export type { PullResult, TransferOptions } from "./pull.js";
export type { PushResult } from "./push.js";
export { type Authenticate, type Challenge, type Credential, parseChallenge } from "./http.js";
export { keyAuthenticator, type BasicLogin, type KeyAuthOptions } from "./auth.js";
export { wireRef, type WireRef } from "./names.js";
export { UploadSessions } from "./upload-sessions.js";
export { saveModels, toOciManifest, REF_NAME_ANNOTATION, ORIGINAL_MANIFEST_ANNOTATION, type SaveOptions } from "./archive-save.js";
export { loadArchive, type LoadOptions, type LoadResult } from "./archive-load.js";
export type { PullOptions } from "./pull.js";
export type { SignResult } from "./sign.js";
export { readSignatureRecords, listSignatures, fallbackTag, type SignatureRecord, type VerifyPolicy, type PushedSignature } from "./signatures.js";
