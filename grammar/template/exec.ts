/**
 * The executor: walks a tree over data with Go's semantics (missingkey=zero on maps, pipelines turning a
 * nil interface into "no value", variables scoped to their control structure, `break`/`continue`).
 * Every runtime error is a TemplateError at the node being evaluated; anything else thrown below (a
 * throwing getter in the data, a stack overflow on absurdly deep data) is turned into one as well.
 *
 * Every node, range iteration and function call is a step of a `TemplateBudget` (budget.ts); output and
 * strings returned by functions are held to its output limit. The walk is a generator that yields when
 * the budget's time slice is over: `Template.execute` runs it straight through, `executeAsync` gives the
 * event loop its turn at each yield. Expressions (pipelines, function calls) are evaluated without
 * yielding: none of them loops over more than its arguments.
 */
import type { Arg, BranchNode, Command, Node, Pipe, TemplateNode, Tree } from "./ast.js";
import { BudgetExceeded, type TemplateBudget } from "./budget.js";
import { isTemplateError, type SourceMap, type TemplateError } from "./errors.js";
import { formatValue } from "./fmt.js";
import { BUILTINS, FuncError, type FuncEnv, type Param } from "./funcs.js";
import { kindOf, mapGet, mapKeys, num, structType, truth, typeName } from "./values.js";

/** The "no final argument" marker of a pipeline's first command. */
const MISSING: unique symbol = Symbol("missing");
type Final = unknown;

const BREAK = 1;
const CONTINUE = 2;
type Signal = 0 | typeof BREAK | typeof CONTINUE;

/** Work that may pause (yield nothing) between slices and finally returns a T. */
export type Steps<T> = Generator<void, T, void>;

/** Go's limit is 100000; a JS stack is smaller, so mf stops recursion through `template` earlier. */
export const MAX_TEMPLATE_DEPTH = 1000;

interface Var {
  name: string;
  value: unknown;
}

type Span = { pos: number; end?: number; name?: string };

const boundedLists = new WeakMap<Node[], boolean>();

/** Whether a list holds no `range` or `template`, even nested: walking it needs no pause. */
function bounded(nodes: Node[]): boolean {
  let b = boundedLists.get(nodes);
  if (b === undefined) {
    b = nodes.every((n) => n.k !== "range" && n.k !== "template" && (n.k !== "if" && n.k !== "with" ? true : bounded(n.list) && (!n.elseList || bounded(n.elseList))));
    boundedLists.set(nodes, b);
  }
  return b;
}

export class Executor {
  private out = "";
  private vars: Var[] = [];
  private depth = 0;
  private at = 0;

  constructor(
    private readonly tree: Tree,
    private readonly map: SourceMap,
    private readonly env: FuncEnv,
    private readonly budget: TemplateBudget,
  ) {}

  *run(root: Node[], data: unknown): Steps<string> {
    const dot = data === null ? undefined : data;
    this.vars = [{ name: "$", value: dot }];
    this.budget.resume();
    try {
      yield* this.walkList(root, dot);
    } catch (e) {
      throw this.asTemplateError(e);
    } finally {
      this.budget.pause();
    }
    return this.out;
  }

  private asTemplateError(e: unknown): TemplateError {
    if (isTemplateError(e)) return e;
    if (e instanceof BudgetExceeded) return this.map.limitError(e.kind, `execution budget exceeded: ${e.reason}`, this.at);
    const msg = e instanceof Error ? e.message : String(e);
    // V8's longest string (~512 Mi characters) reached in one operation the limits did not foresee
    if (e instanceof RangeError && /Invalid string length/.test(msg)) {
      return this.map.limitError("output", "execution budget exceeded: a string longer than the engine allows", this.at);
    }
    return this.map.error("exec", `executing: ${msg}`, this.at);
  }

  /** The end of a time slice: the driver may let others run before the next `next()`. */
  private *breathe(): Steps<void> {
    this.budget.pause();
    yield;
    this.budget.resume();
  }

  private emit(s: string): void {
    this.out += s;
    this.budget.output(this.out.length);
  }

  private fail(node: Span, msg: string): never {
    const ctx = node.name ?? this.map.text.slice(node.pos, node.end ?? node.pos);
    throw this.map.error("exec", `executing at <${ctx}>: ${msg}`, node.pos) as TemplateError;
  }

  /** Walks a list: straight through when it is bounded, else as resumable work. */
  private *walkList(nodes: Node[], dot: unknown): Steps<Signal> {
    if (bounded(nodes)) return this.walkBounded(nodes, dot);
    for (let i = 0; i < nodes.length; i++) {
      this.budget.step();
      if (this.budget.due) yield* this.breathe();
      const n = nodes[i]!;
      let s: Signal = 0;
      switch (n.k) {
        case "if":
        case "with": {
          const mark = this.vars.length;
          const b = this.branch(n, dot);
          if (b) s = bounded(b.list) ? this.walkBounded(b.list, b.dot) : yield* this.walkList(b.list, b.dot);
          this.vars.length = mark;
          break;
        }
        case "range":
          s = yield* this.walkRange(n, dot);
          break;
        case "template":
          s = yield* this.walkTemplate(n, dot);
          break;
        default:
          s = this.walkSimple(n, dot);
      }
      if (s) return s;
    }
    return 0;
  }

  /** A list without `range` or `template` (see `bounded`): its cost is bounded by the template's size. */
  private walkBounded(nodes: Node[], dot: unknown): Signal {
    for (let i = 0; i < nodes.length; i++) {
      this.budget.step();
      const n = nodes[i]!;
      let s: Signal;
      if (n.k === "if" || n.k === "with") {
        const mark = this.vars.length;
        const b = this.branch(n, dot);
        s = b ? this.walkBounded(b.list, b.dot) : 0;
        this.vars.length = mark;
      } else s = this.walkSimple(n, dot);
      if (s) return s;
    }
    return 0;
  }

  /** text, an action, break or continue */
  private walkSimple(n: Node, dot: unknown): Signal {
    switch (n.k) {
      case "text":
        this.emit(n.text);
        return 0;
      case "action": {
        this.at = n.pos;
        const v = this.evalPipeline(dot, n.pipe);
        if (n.pipe.decl.length === 0) this.print(v, n.pipe);
        return 0;
      }
      case "break":
        return BREAK;
      case "continue":
        return CONTINUE;
      default:
        throw new Error(`unexpected ${n.k} node`);
    }
  }

  /** The list an `if` or `with` runs, with its dot (null: none); declarations stay for the caller to drop. */
  private branch(n: BranchNode, dot: unknown): { list: Node[]; dot: unknown } | null {
    this.at = n.pos;
    const v = this.evalPipeline(dot, n.pipe);
    if (truth(v)) return { list: n.list, dot: n.k === "with" ? v : dot };
    return n.elseList ? { list: n.elseList, dot } : null;
  }

  private print(v: unknown, pipe: Pipe): void {
    if (kindOf(v) === "func") {
      const last = pipe.cmds[pipe.cmds.length - 1]!;
      this.fail({ pos: last.pos, end: last.args[last.args.length - 1]!.end }, `can't print value of type ${typeName(v)}`);
    }
    this.emit(formatValue(v));
  }

  private *walkRange(n: BranchNode, dot: unknown): Steps<Signal> {
    const mark = this.vars.length;
    this.at = n.pos;
    const val = this.evalCommands(dot, n.pipe);
    this.at = n.pos; // a limit reached by the loop itself points at the range
    const decl = n.pipe.decl;
    if (!n.pipe.isAssign) for (const d of decl) this.vars.push({ name: d, value: val });
    const top = this.vars.length;
    const body = n.list;
    const flat = bounded(body);
    let keys: string[] | undefined;
    let count = 0;
    const kind = kindOf(val);
    switch (kind) {
      case "slice":
        count = (val as unknown[]).length;
        break;
      case "map":
        keys = mapKeys(val as Record<string, unknown>);
        count = keys.length;
        break;
      case "int":
        if (decl.length > 1) this.fail({ pos: n.pipe.pos, end: n.pipe.pos }, `can't use ${formatValue(val)} to iterate over more than one variable`);
        count = num(val);
        break;
      case "invalid":
      case "nil":
        break;
      default: {
        const last = n.pipe.cmds[n.pipe.cmds.length - 1]!;
        this.fail({ pos: last.pos, end: last.args[last.args.length - 1]!.end }, `range can't iterate over ${formatValue(val)}`);
      }
    }
    for (let i = 0; i < count; i++) {
      this.budget.step();
      if (this.budget.due) yield* this.breathe();
      let index: unknown = i;
      let elem: unknown = i;
      if (keys) {
        index = keys[i]!;
        elem = (val as Record<string, unknown>)[keys[i]!];
      } else if (kind === "slice") {
        const e = (val as unknown[])[i];
        elem = e === undefined ? null : e;
      }
      this.rangeVars(n.pipe, top, index, elem);
      const s = flat ? this.walkBounded(body, elem) : yield* this.walkList(body, elem);
      this.vars.length = top;
      if (s === BREAK) break;
    }
    const ran = count > 0;
    let s: Signal = 0;
    if (!ran && n.elseList) s = yield* this.walkList(n.elseList, dot);
    this.vars.length = mark;
    return s;
  }

  private rangeVars(pipe: Pipe, top: number, index: unknown, elem: unknown): void {
    const decl = pipe.decl;
    if (decl.length > 0) {
      if (pipe.isAssign) this.setVar(decl[0]!, decl.length > 1 ? index : elem, pipe);
      else this.vars[top - 1]!.value = elem;
    }
    if (decl.length > 1) {
      if (pipe.isAssign) this.setVar(decl[1]!, elem, pipe);
      else this.vars[top - 2]!.value = index;
    }
  }

  private *walkTemplate(n: TemplateNode, dot: unknown): Steps<Signal> {
    this.at = n.pos;
    const list = this.tree.defs.get(n.name);
    if (!list) this.fail({ pos: n.pos, name: `template "${n.name}"` }, `no template "${n.name}" associated with template ""`);
    if (this.depth >= MAX_TEMPLATE_DEPTH) this.fail({ pos: n.pos, name: `template "${n.name}"` }, `exceeded maximum template depth (${MAX_TEMPLATE_DEPTH})`);
    const newDot = n.pipe ? this.evalPipeline(dot, n.pipe) : undefined;
    const saved = this.vars;
    this.vars = [{ name: "$", value: newDot }];
    this.depth++;
    try {
      yield* this.walkList(list, newDot);
    } finally {
      this.depth--;
      this.vars = saved;
    }
    return 0;
  }

  private setVar(name: string, value: unknown, at: Span): void {
    for (let i = this.vars.length - 1; i >= 0; i--) {
      if (this.vars[i]!.name === name) {
        this.vars[i]!.value = value;
        return;
      }
    }
    this.fail(at, `undefined variable: ${name}`);
  }

  private varValue(name: string, at: Span): unknown {
    for (let i = this.vars.length - 1; i >= 0; i--) if (this.vars[i]!.name === name) return this.vars[i]!.value;
    return this.fail(at, `undefined variable: ${name}`);
  }

  /** The commands of a pipeline, without its declarations. */
  private evalCommands(dot: unknown, pipe: Pipe): unknown {
    let value: unknown = MISSING;
    for (let i = 0; i < pipe.cmds.length; i++) {
      value = this.evalCommand(dot, pipe.cmds[i]!, value);
      // A nil interface becomes "no value", as Go's evalPipeline does.
      if (value === null) value = undefined;
    }
    return value;
  }

  private evalPipeline(dot: unknown, pipe: Pipe): unknown {
    const value = this.evalCommands(dot, pipe);
    for (const d of pipe.decl) {
      if (pipe.isAssign) this.setVar(d, value, pipe);
      else this.vars.push({ name: d, value });
    }
    return value;
  }

  private evalCommand(dot: unknown, cmd: Command, final: Final): unknown {
    const first = cmd.args[0]!;
    this.at = first.pos;
    switch (first.k) {
      case "field":
        return this.evalFieldChain(dot, dot, first, first.idents, cmd.args, final);
      case "chain":
        return this.evalChain(dot, first, cmd.args, final);
      case "ident":
        return this.evalCall(dot, first, cmd.args, final);
      case "pipe":
        this.notAFunction(cmd.args, final);
        return this.evalPipeline(dot, first.pipe);
      case "var":
        return this.evalVariable(dot, first, cmd.args, final);
    }
    this.notAFunction(cmd.args, final);
    switch (first.k) {
      case "bool":
      case "number":
      case "string":
        return first.value;
      case "dot":
        return dot;
      case "nil":
        return this.fail(first, "nil is not a command");
    }
  }

  private notAFunction(args: Arg[], final: Final): void {
    if (args.length > 1 || final !== MISSING) this.fail(args[0]!, `can't give argument to non-function ${this.map.text.slice(args[0]!.pos, args[0]!.end)}`);
  }

  private evalVariable(dot: unknown, node: Extract<Arg, { k: "var" }>, args: Arg[], final: Final): unknown {
    const value = this.varValue(node.name, node);
    if (node.idents.length === 0) {
      this.notAFunction(args, final);
      return value;
    }
    return this.evalFieldChain(dot, value, node, node.idents, args, final);
  }

  private evalChain(dot: unknown, node: Extract<Arg, { k: "chain" }>, args: Arg[], final: Final): unknown {
    if (node.node.k === "nil") this.fail(node, "indirection through explicit nil");
    const base = this.evalArg(dot, null, node.node);
    return this.evalFieldChain(dot, base, node, node.idents, args, final);
  }

  private evalFieldChain(dot: unknown, receiver: unknown, node: Arg, idents: string[], args: Arg[], final: Final): unknown {
    const n = idents.length;
    for (let i = 0; i < n - 1; i++) receiver = this.evalField(idents[i]!, node, false, receiver);
    return this.evalField(idents[n - 1]!, node, args.length > 1 || final !== MISSING, receiver);
  }

  private evalField(name: string, node: Arg, hasArgs: boolean, receiver: unknown): unknown {
    const k = kindOf(receiver);
    if (k === "invalid") return undefined;
    if (k === "nil") this.fail(node, `nil pointer evaluating interface {}.${name}`);
    if (k === "map") {
      if (hasArgs) this.fail(node, `${name} is not a method but has arguments`);
      return mapGet(receiver as object, name);
    }
    if (k === "struct" && structType(receiver)!.fields.some((f) => f.name === name)) {
      if (hasArgs) this.fail(node, `${name} has arguments but cannot be invoked as function`);
      const v = (receiver as Record<string, unknown>)[name];
      return v === undefined ? null : v;
    }
    return this.fail(node, `can't evaluate field ${name} in type ${typeName(receiver)}`);
  }

  private evalCall(dot: unknown, node: Extract<Arg, { k: "ident" }>, args: Arg[], final: Final): unknown {
    const name = node.name;
    const def = BUILTINS[name]!;
    const at = { pos: node.pos, name };
    const argNodes = args.slice(1);
    const numIn = argNodes.length + (final !== MISSING ? 1 : 0);
    const min = def.params.length;
    if (def.variadic ? numIn < min : numIn !== min) {
      this.fail(at, `wrong number of args for ${name}: want ${def.variadic ? "at least " : ""}${min} got ${numIn}`);
    }
    const paramType = (i: number): Param => def.params[i] ?? def.variadic!;
    this.budget.call();
    if (name === "and" || name === "or") {
      let v: unknown;
      for (const a of argNodes) {
        v = this.evalArg(dot, "any", a);
        if (truth(v) === (name === "or")) return v;
      }
      if (final !== MISSING) v = final === undefined ? null : final;
      return v;
    }
    const values: unknown[] = [];
    for (let i = 0; i < argNodes.length; i++) values.push(this.evalArg(dot, paramType(i), argNodes[i]!));
    if (final !== MISSING) values.push(this.validate(final, paramType(argNodes.length), at));
    this.at = node.pos;
    let r: unknown;
    try {
      r = def.fn(values, this.env);
    } catch (e) {
      if (e instanceof FuncError) this.fail(at, `error calling ${name}: ${e.message}`);
      throw e;
    }
    if (typeof r === "string") this.budget.output(r.length);
    return r;
  }

  /** An argument, converted for a parameter of type `typ` (null: no conversion at all). */
  private evalArg(dot: unknown, typ: Param | null, n: Arg): unknown {
    this.at = n.pos;
    let v: unknown;
    switch (n.k) {
      case "dot":
        v = dot;
        break;
      case "nil":
        if (typ === "string") this.fail(n, "cannot assign nil to string");
        return null;
      case "field":
        v = this.evalFieldChain(dot, dot, n, n.idents, [n], MISSING);
        break;
      case "var":
        v = this.evalVariable(dot, n, [n], MISSING);
        break;
      case "pipe":
        v = this.evalPipeline(dot, n.pipe);
        break;
      case "ident":
        v = this.evalCall(dot, n, [n], MISSING);
        break;
      case "chain":
        v = this.evalChain(dot, n, [n], MISSING);
        break;
      default:
        if (typ === "string" && n.k !== "string") this.fail(n, `expected string; found ${this.map.text.slice(n.pos, n.end)}`);
        return n.value;
    }
    return this.validate(v, typ, n);
  }

  private validate(v: unknown, typ: Param | null, at: Span): unknown {
    if (typ === null) return v;
    if (typ === "any") return v === undefined ? null : v;
    if (typeof v === "string") return v;
    if (v === undefined) this.fail(at, "invalid value; expected string");
    return this.fail(at, `wrong type for value; expected string; got ${v === null ? "interface {}" : typeName(v)}`);
  }
}
