/**
 * Ollama's prompt rendering over grammar/template. The runtime calls `renderChatPrompt` for /api/chat and
 * `renderGeneratePrompt` for /api/generate (both also serve `_debug_render_only`), with one
 * `TemplateCache` per server. Template errors are TemplateErrors (code TEMPLATE_INVALID).
 */
export type {
  ChatMessage,
  ChatRequest,
  GenerateRequest,
  ImagePrompt,
  RenderedPrompt,
  Role,
  Think,
  Tool,
  ToolCall,
  ToolCallFunction,
  ToolFunction,
  ToolFunctionParameters,
  ToolProperty,
} from "./types.js";
export { TemplateCache, PreparedTemplate, prepareTemplate } from "./cache.js";
export { collate, executePrompt, executePromptSteps, type PromptValues } from "./render.js";
export { messageData, toolData, thinkData } from "./data.js";
export {
  DEFAULT_TEMPLATE,
  chatMessages,
  renderChatPrompt,
  renderChatPromptAsync,
  renderGeneratePrompt,
  renderGeneratePromptAsync,
  tagImages,
  type RenderOptions,
} from "./requests.js";
