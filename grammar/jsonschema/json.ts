/** Any JSON object (Ollama's `format: "json"`), in the same terms as the schema converter's rules. */
import { schemaToGbnf } from "./convert.js";

export const JSON_OBJECT_GBNF = schemaToGbnf({ type: "object" });
