/**
 * Template data with Ollama's Go types: messages, tool calls and tools become structs (fields in Go
 * order, JSON names and omitempty as Ollama's api package declares them), and the values Ollama gives a
 * `String()` method print as JSON (`{{ .Function.Arguments }}`, `{{ . }}` on a tool).
 */
import { goJson, goStruct, withStringer, type StructType } from "../../grammar/template/index.js";
import type { ChatMessage, Think, Tool, ToolCall, ToolProperty } from "./types.js";

const MESSAGE: StructType = {
  name: "api.Message",
  fields: [
    { name: "Role", json: "role" },
    { name: "Content", json: "content" },
    { name: "Thinking", json: "thinking", omitempty: true },
    { name: "Images", json: "images", omitempty: true },
    { name: "ToolCalls", json: "tool_calls", omitempty: true },
    { name: "ToolName", json: "tool_name", omitempty: true },
    { name: "ToolCallID", json: "tool_call_id", omitempty: true },
  ],
};

const TOOL_CALL: StructType = {
  name: "api.ToolCall",
  fields: [
    { name: "ID", json: "id", omitempty: true },
    { name: "Function", json: "function" },
  ],
};

const TOOL_CALL_FUNCTION: StructType = {
  name: "api.ToolCallFunction",
  fields: [
    { name: "Index", json: "index", omitempty: true },
    { name: "Name", json: "name" },
    { name: "Arguments", json: "arguments" },
  ],
};

const TOOL: StructType = {
  name: "api.Tool",
  fields: [
    { name: "Type", json: "type" },
    { name: "Items", json: "items", omitempty: true },
    { name: "Function", json: "function" },
  ],
};

const TOOL_FUNCTION: StructType = {
  name: "api.ToolFunction",
  fields: [
    { name: "Name", json: "name" },
    { name: "Description", json: "description", omitempty: true },
    { name: "Parameters", json: "parameters" },
  ],
};

const TOOL_PARAMETERS: StructType = {
  name: "api.ToolFunctionParameters",
  fields: [
    { name: "Type", json: "type" },
    { name: "Defs", json: "$defs", omitempty: true },
    { name: "Items", json: "items", omitempty: true },
    { name: "Required", json: "required", omitempty: true },
    { name: "Properties", json: "properties" },
  ],
};

const TOOL_PROPERTY: StructType = {
  name: "api.ToolProperty",
  fields: [
    { name: "AnyOf", json: "anyOf", omitempty: true },
    { name: "Type", json: "type", omitempty: true },
    { name: "Items", json: "items", omitempty: true },
    { name: "Description", json: "description", omitempty: true },
    { name: "Enum", json: "enum", omitempty: true },
    { name: "Properties", json: "properties", omitempty: true },
  ],
};

function str(v: unknown): string {
  return typeof v === "string" ? v : v === undefined || v === null ? "" : String(v);
}

function toolCallData(c: ToolCall): Record<string, unknown> {
  const fn = c?.function ?? ({} as ToolCall["function"]);
  const args = fn.arguments && typeof fn.arguments === "object" ? { ...fn.arguments } : {};
  const argsValue: Record<string, unknown> = withStringer(args, (): string => goJson(argsValue));
  return goStruct(TOOL_CALL, {
    ID: str(c?.id),
    Function: goStruct(TOOL_CALL_FUNCTION, { Index: typeof fn.index === "number" ? fn.index : 0, Name: str(fn.name), Arguments: argsValue }),
  });
}

/** A message as templates see it (`.Role`, `.Content`, `.ToolCalls`, …). */
export function messageData(m: ChatMessage): Record<string, unknown> {
  return goStruct(MESSAGE, {
    // Ollama lower-cases roles before templates see them
    Role: str(m.role).toLowerCase(),
    Content: str(m.content),
    Thinking: str(m.thinking),
    Images: Array.isArray(m.images) ? [...m.images] : [],
    // a message without calls has a nil slice in Ollama, which `json` prints as null
    ToolCalls: Array.isArray(m.tool_calls) ? m.tool_calls.map(toolCallData) : null,
    ToolName: str(m.tool_name),
    ToolCallID: str(m.tool_call_id),
  });
}

/** A parameter's schema as Ollama's ToolProperty: nested objects (`properties`) and `anyOf` included, as Ollama keeps them. */
function propertyData(p: ToolProperty): Record<string, unknown> {
  const t = p?.type;
  const type = Array.isArray(t) ? (t.length === 1 ? str(t[0]) : t.map(str)) : str(t);
  const nested: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p?.properties ?? {})) nested[k] = propertyData(v);
  return goStruct(TOOL_PROPERTY, {
    AnyOf: Array.isArray(p?.anyOf) ? p.anyOf.map(propertyData) : [],
    Type: type,
    Items: p?.items ?? null,
    Description: str(p?.description),
    Enum: Array.isArray(p?.enum) ? p.enum : [],
    Properties: nested,
  });
}

/** A tool as templates see it; `{{ . }}` and `{{ .Function }}` print JSON, as Ollama's String() does. */
export function toolData(t: Tool): Record<string, unknown> {
  const f = t?.function ?? ({} as Tool["function"]);
  const p = f.parameters ?? ({} as Tool["function"]["parameters"]);
  const properties: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p.properties ?? {})) properties[k] = propertyData(v);
  const fn: Record<string, unknown> = goStruct(
    TOOL_FUNCTION,
    {
      Name: str(f.name),
      Description: str(f.description),
      Parameters: goStruct(TOOL_PARAMETERS, {
        Type: str(p.type),
        Defs: p.$defs ?? null,
        Items: p.items ?? null,
        Required: Array.isArray(p.required) ? p.required : [],
        Properties: properties,
      }),
    },
    () => goJson(fn),
  );
  const tool: Record<string, unknown> = goStruct(TOOL, { Type: str(t?.type), Items: t?.items ?? null, Function: fn }, () => goJson(tool));
  return tool;
}

/** `.Think`, `.ThinkLevel`, `.IsThinkSet`. */
export function thinkData(think: Think | undefined): { Think: boolean; ThinkLevel: string; IsThinkSet: boolean } {
  return {
    Think: typeof think === "string" ? think !== "" : think === true,
    ThinkLevel: typeof think === "string" ? think : "",
    IsThinkSet: think !== undefined && think !== null,
  };
}
