/**
 * The one progress model shared by the builder, the registry client and the runtime API: the same
 * objects the Ollama API streams (`{status, digest?, total?, completed?}`), so the CLI renders them and
 * the API sends them unchanged.
 */
export interface ProgressEvent {
  status: string;
  digest?: string;
  total?: number;
  completed?: number;
}

export type ProgressSink = (e: ProgressEvent) => void;

export const noProgress: ProgressSink = () => {};
