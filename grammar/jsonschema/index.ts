/**
 * JSON Schema → GBNF for `format` and `response_format`: `schemaToGbnf(schema)` gives the grammar text
 * node-llama-cpp loads (`llama.createGrammar`), or throws SchemaUnsupported (a 400 naming the keyword).
 * `parseGbnf` + `matches` recognize a text against a grammar without a model.
 */
export { schemaToGbnf, SchemaUnsupported, LIMITS } from "./convert.js";
export { parseGbnf, matches, GbnfError, type Rules } from "./gbnf.js";
export { patternToGbnf } from "./regex.js";

/** The grammar of `format: "json"`: any JSON object, as Ollama's JSON mode asks for. */
export { JSON_OBJECT_GBNF } from "./json.js";
