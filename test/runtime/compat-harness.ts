/**
 * The runtime harness with the models the compatible-API client tests need, created through /api/create
 * from the tiny `chat` model: `tooly` (a template with .Tools that prints calls as JSON) and `thinker` (a
 * template that prints .Thinking between <think> tags and opens a thinking block when asked to think).
 */
import assert from "node:assert/strict";
import { request } from "node:http";
import { type Harness, post, startHarness } from "./harness.js";

export const TOOLS_TEMPLATE = `{{- if .Tools }}<|im_start|>system
Tools: {{ json .Tools }}<|im_end|>
{{ end }}{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if .ToolCalls }}{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ json .Function.Arguments }}}{{ end }}{{ else }}{{ .Content }}{{ end }}<|im_end|>
{{ end }}<|im_start|>assistant
`;

export const THINKING_TEMPLATE = `{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ if .Think }}<think>
{{ end }}`;

export const weatherParameters = { type: "object", properties: { city: { type: "string", maxLength: 8 } }, required: ["city"], additionalProperties: false };

export async function startCompatHarness(): Promise<Harness> {
  const h = await startHarness();
  for (const [model, template] of [["tooly", TOOLS_TEMPLATE], ["thinker", THINKING_TEMPLATE]]) {
    const r = await post(h.base, "/api/create", { model, from: "chat", template, stream: false });
    assert.equal(r.status, 200, r.text);
  }
  return h;
}

/**
 * A request with headers fetch will not send as given (`Host`): through node:http to the harness's
 * address. Answers the status, the headers and the body parsed as JSON.
 */
export function rawRequest(base: string, method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<{ status: number; headers: Record<string, unknown>; json: any }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const r = request({ host: u.hostname, port: u.port, method, path, headers: { "content-type": "application/json", ...headers } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, json: text ? JSON.parse(text) : undefined }));
      res.on("error", reject);
    });
    r.on("error", reject);
    r.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
