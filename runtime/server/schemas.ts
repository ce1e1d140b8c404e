/**
 * Request shapes of the Ollama API as JSON Schema, validated by fastify before a handler runs (no type
 * coercion: a wrong type is a 400), with the TypeScript types the handlers read.
 */

const str = { type: "string" } as const;
const bool = { type: "boolean" } as const;
const obj = { type: "object" } as const;
const keepAlive = { type: ["string", "number"] } as const;
const format = { anyOf: [{ type: "string" }, { type: "object" }] } as const;
const strList = { type: "array", items: str } as const;

const message = {
  type: "object",
  required: ["role"],
  properties: {
    role: str,
    content: { type: ["string", "null"] },
    thinking: str,
    images: { type: ["array", "null"], items: str },
    tool_calls: { type: ["array", "null"], items: obj },
    tool_name: str,
    tool_call_id: str,
  },
} as const;

export const generateSchema = {
  type: "object",
  required: ["model"],
  properties: {
    model: str,
    prompt: str,
    suffix: str,
    system: str,
    template: str,
    context: { type: "array", items: { type: "integer", minimum: 0 } },
    stream: bool,
    raw: bool,
    format,
    images: { type: ["array", "null"], items: str },
    keep_alive: keepAlive,
    options: { type: ["object", "null"] },
    think: { type: ["boolean", "string"] },
    logprobs: bool,
    top_logprobs: { type: "integer" },
    _debug_render_only: bool,
  },
} as const;

export interface GenerateBody {
  model: string;
  prompt?: string;
  suffix?: string;
  system?: string;
  template?: string;
  context?: number[];
  stream?: boolean;
  raw?: boolean;
  format?: string | object;
  images?: string[] | null;
  keep_alive?: string | number;
  options?: Record<string, unknown> | null;
  think?: boolean | string;
  logprobs?: boolean;
  top_logprobs?: number;
  _debug_render_only?: boolean;
}

export const chatSchema = {
  type: "object",
  required: ["model"],
  properties: {
    model: str,
    messages: { type: ["array", "null"], items: message },
    tools: { type: ["array", "null"], items: obj },
    stream: bool,
    format,
    template: str,
    keep_alive: keepAlive,
    options: { type: ["object", "null"] },
    think: { type: ["boolean", "string"] },
    logprobs: bool,
    top_logprobs: { type: "integer" },
    _debug_render_only: bool,
  },
} as const;

export const embedSchema = {
  type: "object",
  required: ["model"],
  properties: {
    model: str,
    input: { anyOf: [str, strList] },
    truncate: bool,
    dimensions: { type: "integer", minimum: 1 },
    keep_alive: keepAlive,
    options: { type: ["object", "null"] },
  },
} as const;

export const embeddingsSchema = {
  type: "object",
  required: ["model"],
  properties: { model: str, prompt: str, keep_alive: keepAlive, options: { type: ["object", "null"] } },
} as const;

/** `model`, or the starting document's `name` */
export const nameSchema = {
  type: "object",
  properties: { model: str, name: str, verbose: bool },
} as const;

export const copySchema = {
  type: "object",
  required: ["source", "destination"],
  properties: { source: str, destination: str },
} as const;

export const createSchema = {
  type: "object",
  properties: {
    model: str,
    name: str,
    modelfile: str,
    path: str,
    from: str,
    files: { type: "object", additionalProperties: str },
    adapters: { type: "object", additionalProperties: str },
    draft_files: { type: "object", additionalProperties: str },
    template: str,
    system: str,
    license: { anyOf: [str, strList] },
    parameters: obj,
    messages: { type: "array", items: message },
    stream: bool,
    quantize: str,
    quantization: str,
    draft_quantize: str,
  },
} as const;

export interface CreateBody {
  model?: string;
  name?: string;
  modelfile?: string;
  path?: string;
  from?: string;
  files?: Record<string, string>;
  adapters?: Record<string, string>;
  draft_files?: Record<string, string>;
  template?: string;
  system?: string;
  license?: string | string[];
  parameters?: Record<string, unknown>;
  messages?: { role: string; content?: string | null }[];
  stream?: boolean;
  quantize?: string;
  quantization?: string;
  draft_quantize?: string;
}
