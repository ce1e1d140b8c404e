/** The Ollama API shapes prompt rendering reads (`/api/chat` messages and tools, `/api/generate`). */

export type Role = "system" | "user" | "assistant" | "tool" | (string & {});

export interface ToolCallFunction {
  index?: number;
  name: string;
  arguments: Record<string, unknown>;
}

export interface ToolCall {
  id?: string;
  function: ToolCallFunction;
}

export interface ChatMessage {
  role: Role;
  content: string;
  thinking?: string;
  /** base64 images */
  images?: string[];
  tool_calls?: ToolCall[];
  tool_name?: string;
  tool_call_id?: string;
}

export interface ToolProperty {
  anyOf?: ToolProperty[];
  type?: string | string[];
  items?: unknown;
  description?: string;
  enum?: unknown[];
  /** a nested object's own properties */
  properties?: Record<string, ToolProperty>;
}

export interface ToolFunctionParameters {
  type: string;
  $defs?: unknown;
  items?: unknown;
  required?: string[];
  properties: Record<string, ToolProperty>;
}

export interface ToolFunction {
  name: string;
  description?: string;
  parameters: ToolFunctionParameters;
}

export interface Tool {
  type: string;
  items?: unknown;
  function: ToolFunction;
}

/** `think` of a request: a switch, or a level ("high", "medium", "low"). */
export type Think = boolean | string;

/** What an image contributes to prompts: its TEMPLATE, SYSTEM and MESSAGEs. */
export interface ImagePrompt {
  /** TEMPLATE text; absent or empty: `{{ .Prompt }}` (the prompt as is) */
  template?: string | null;
  /** digest of the template layer, the parse cache's key (else the text's sha256) */
  templateDigest?: string;
  system?: string | null;
  messages?: ChatMessage[];
}

export interface ChatRequest {
  messages: ChatMessage[];
  tools?: Tool[];
  think?: Think;
  /** overrides the image's TEMPLATE */
  template?: string;
}

export interface GenerateRequest {
  prompt: string;
  suffix?: string;
  system?: string;
  /** overrides the image's TEMPLATE */
  template?: string;
  raw?: boolean;
  images?: string[];
  think?: Think;
  /** the request carries `context`: the image's MESSAGEs are left out (the runtime prepends the context) */
  hasContext?: boolean;
}

export interface RenderedPrompt {
  prompt: string;
  /** the last message was an assistant's: the prompt ends inside its answer, which the model continues */
  prefill: boolean;
  /** images in the order their `[img-N]` tags were given */
  images: string[];
}
