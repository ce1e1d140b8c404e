/** The parse tree of a template. Offsets (`pos`, `end`) index the template text. */
import type { GoFloat } from "./values.js";

export type Arg =
  | { k: "field"; pos: number; end: number; idents: string[] }
  /** `$x.A.B`: name `$x`, idents `[A, B]` */
  | { k: "var"; pos: number; end: number; name: string; idents: string[] }
  /** `(pipeline).A.B` or `fn.A` */
  | { k: "chain"; pos: number; end: number; node: Arg; idents: string[] }
  | { k: "ident"; pos: number; end: number; name: string }
  | { k: "dot"; pos: number; end: number }
  | { k: "nil"; pos: number; end: number }
  | { k: "bool"; pos: number; end: number; value: boolean }
  | { k: "number"; pos: number; end: number; value: number | GoFloat }
  | { k: "string"; pos: number; end: number; value: string }
  | { k: "pipe"; pos: number; end: number; pipe: Pipe };

export interface Command {
  pos: number;
  args: Arg[];
}

export interface Pipe {
  pos: number;
  /** declared or assigned variables (`$x :=`, `$i, $e :=` in range) */
  decl: string[];
  isAssign: boolean;
  cmds: Command[];
}

export interface BranchNode {
  k: "if" | "with" | "range";
  pos: number;
  pipe: Pipe;
  list: Node[];
  elseList: Node[] | null;
}

export interface TemplateNode {
  k: "template";
  pos: number;
  name: string;
  pipe: Pipe | null;
}

export type Node =
  | { k: "text"; pos: number; text: string }
  | { k: "action"; pos: number; pipe: Pipe }
  | BranchNode
  | TemplateNode
  | { k: "break" | "continue"; pos: number };

/** A parsed template: its main list and the templates it defines (`define`, `block`). */
export interface Tree {
  root: Node[];
  defs: Map<string, Node[]>;
}
