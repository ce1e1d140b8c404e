/**
 * Whole-tree questions and rewrites: which identifiers a template mentions, appending an action, and
 * cutting a template right after the first action that prints a given field (Ollama's legacy prefill).
 */
import type { Arg, Node, Pipe, Tree } from "./ast.js";

/** Every field name, and every variable name, that the template (and its `define`s) mentions. */
export function identifiers(tree: Tree): Set<string> {
  const out = new Set<string>();
  const arg = (a: Arg): void => {
    switch (a.k) {
      case "field":
        a.idents.forEach((i) => out.add(i));
        break;
      case "var":
        out.add(a.name);
        a.idents.forEach((i) => out.add(i));
        break;
      case "chain":
        arg(a.node);
        a.idents.forEach((i) => out.add(i));
        break;
      case "pipe":
        pipe(a.pipe);
        break;
    }
  };
  const pipe = (p: Pipe | null): void => {
    if (!p) return;
    p.decl.forEach((d) => out.add(d));
    for (const c of p.cmds) c.args.forEach(arg);
  };
  const list = (nodes: Node[]): void => {
    for (const n of nodes) {
      switch (n.k) {
        case "action":
        case "template":
          pipe(n.pipe);
          break;
        case "if":
        case "with":
        case "range":
          pipe(n.pipe);
          list(n.list);
          if (n.elseList) list(n.elseList);
          break;
      }
    }
  };
  list(tree.root);
  for (const d of tree.defs.values()) list(d);
  return out;
}

/** `{{ .Field }}` appended at the end of the main template. */
export function appendField(tree: Tree, field: string, at: number): Tree {
  const node: Node = {
    k: "action",
    pos: at,
    pipe: { pos: at, decl: [], isAssign: false, cmds: [{ pos: at, args: [{ k: "field", pos: at, end: at, idents: [field] }] }] },
  };
  return { root: [...tree.root, node], defs: tree.defs };
}

function argMentions(a: Arg, field: string): boolean {
  switch (a.k) {
    case "field":
      return a.idents.includes(field);
    case "var":
      return a.idents.includes(field);
    case "chain":
      return a.idents.includes(field) || argMentions(a.node, field);
    case "pipe":
      return pipeMentions(a.pipe, field);
    default:
      return false;
  }
}

function pipeMentions(p: Pipe, field: string): boolean {
  return p.cmds.some((c) => c.args.some((a) => argMentions(a, field)));
}

/**
 * The main template cut right after the first action (in document order, through the bodies of
 * `if`/`with`/`range` but not their conditions) whose pipeline reads `field`. Everything after that
 * action is dropped, including the rest of every enclosing block and the `else` branches after it;
 * `define`d templates are kept whole. Returns the tree unchanged when no action reads the field.
 */
export function cutAfterField(tree: Tree, field: string): Tree {
  let cut = false;
  const list = (nodes: Node[]): Node[] => {
    const out: Node[] = [];
    for (const n of nodes) {
      if (cut) break;
      switch (n.k) {
        case "action":
          out.push(n);
          if (pipeMentions(n.pipe, field)) cut = true;
          break;
        case "if":
        case "with":
        case "range": {
          const body = list(n.list);
          const elseList = n.elseList && !cut ? list(n.elseList) : n.elseList ? [] : null;
          out.push({ ...n, list: body, elseList });
          break;
        }
        default:
          out.push(n);
      }
    }
    return out;
  };
  return { root: list(tree.root), defs: tree.defs };
}
