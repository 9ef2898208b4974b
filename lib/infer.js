'use strict';
// inferCapabilities(code): the capability tokens a handler can need, found by
// parsing it with acorn and walking the tree with a small scope analysis.
// Anything it cannot pin to a literal name widens to that family's `*`.
// TypeScript is stripped first (lib/typescript.js); positions are kept, so
// errors point into the TypeScript.

const acorn = require('acorn');
const { handler: HANDLER } = require('../src/contract');
const { languageOf, strip } = require('./typescript');

// The runtime's own wrapper (src/contract.js), so that exactly the programs
// it compiles parse here: `let $state` at the top level redeclares a
// parameter, `await` is a keyword, `new.target` is allowed.
const PREFIX = HANDLER.prefix;
const SUFFIX = HANDLER.suffix;
const PARSE_OPTIONS = { ecmaVersion: 'latest', sourceType: 'script' };

// The globals that need capabilities, and what each one grants when it is
// used as a plain value: it may then be read or written through any name.
const WILDCARDS = {
  $state: ['state:read:*', 'state:write:*'],
  $emit: ['events:emit:*'],
  $view: ['view:update:*'],
  $ext: ['ext:*'],
};
const GLOBALS = Object.keys(WILDCARDS);

// Methods that change a value read from $state in place; the runtime reports
// such a change as a `set` of the key. Array and TypedArray mutators,
// Map/Set-style set/add/delete/clear (state cannot hold a Map or Set, but a
// write is the safe reading), and Date setters (setFullYear, setUTCHours, ...).
const MUTATORS = new Set([
  'push', 'pop', 'shift', 'unshift', 'splice', 'sort', 'reverse', 'fill', 'copyWithin',
  'set', 'add', 'delete', 'clear',
]);
const isMutator = (name) =>
  MUTATORS.has(name) || (name.length > 3 && name.startsWith('set') && name[3] >= 'A' && name[3] <= 'Z');

// Object.* functions that only enumerate and read what they are given.
const READ_ALL = new Set(['keys', 'values', 'entries']);

class Scope {
  constructor(parent, names) {
    this.parent = parent;
    this.names = names;
  }

  has(name) {
    for (let s = this; s; s = s.parent) if (s.names.has(name)) return true;
    return false;
  }
}

function forEachChild(node, fn) {
  for (const key of Object.keys(node)) {
    const v = node[key];
    if (Array.isArray(v)) {
      for (const c of v) if (c && typeof c.type === 'string') fn(c);
    } else if (v && typeof v.type === 'string') {
      fn(v);
    }
  }
}

function patternNames(p, out) {
  switch (p.type) {
    case 'Identifier': out.add(p.name); break;
    case 'ObjectPattern':
      for (const prop of p.properties) patternNames(prop.type === 'RestElement' ? prop.argument : prop.value, out);
      break;
    case 'ArrayPattern': for (const e of p.elements) if (e) patternNames(e, out); break;
    case 'AssignmentPattern': patternNames(p.left, out); break;
    case 'RestElement': patternNames(p.argument, out); break;
  }
  return out;
}

// `var` names hoist to the enclosing function through blocks, but not out of
// nested functions or classes.
function varNames(node, out) {
  switch (node.type) {
    case 'VariableDeclaration':
      if (node.kind === 'var') for (const d of node.declarations) patternNames(d.id, out);
      return out;
    case 'FunctionDeclaration': case 'FunctionExpression': case 'ArrowFunctionExpression':
    case 'ClassDeclaration': case 'ClassExpression':
      return out;
  }
  forEachChild(node, (c) => varNames(c, out));
  return out;
}

// Block-scoped declarations of one statement list. Functions declared in a
// block count as block-scoped (the strict reading; Annex B hoisting never
// applies to the wrapper's parameter names anyway).
function lexicalNames(statements, out) {
  for (const s of statements) {
    if (s.type === 'VariableDeclaration' && s.kind !== 'var') {
      for (const d of s.declarations) patternNames(d.id, out);
    } else if ((s.type === 'FunctionDeclaration' || s.type === 'ClassDeclaration') && s.id) {
      out.add(s.id.name);
    }
  }
  return out;
}

function blockScope(statements, scope) {
  const names = lexicalNames(statements, new Set());
  return names.size ? new Scope(scope, names) : scope;
}

// The property key an expression always evaluates to, or null.
function staticKey(node) {
  if (node.type === 'Literal') return node.regex ? `/${node.regex.pattern}/${node.regex.flags}` : String(node.value);
  if (node.type === 'TemplateLiteral' && node.expressions.length === 0) return node.quasis[0].value.cooked;
  return null;
}

// A string argument known before run time (event names, component ids).
function staticString(node) {
  if (node.type === 'Literal') return typeof node.value === 'string' ? node.value : null;
  return staticKey(node);
}

const memberKey = (m) => (m.computed ? staticKey(m.property) ?? '*' : m.property.name);
const propertyKey = (p) => (p.computed || p.key.type !== 'Identifier' ? staticKey(p.key) ?? '*' : p.key.name);

class Walker {
  constructor() {
    this.tokens = new Set();
  }

  add(token) {
    this.tokens.add(token);
  }

  escape(name) {
    for (const t of WILDCARDS[name]) this.add(t);
  }

  escapeAll(scope) {
    for (const g of GLOBALS) if (!scope.has(g)) this.escape(g);
  }

  // Which handler global `node` refers to, if any.
  global(node, scope) {
    return node && node.type === 'Identifier' && WILDCARDS[node.name] && !scope.has(node.name) ? node.name : null;
  }

  // k when node is $state.k or a path below it ($state.k.x[0]).
  stateRoot(node, scope) {
    for (;;) {
      if (node.type === 'ChainExpression') node = node.expression;
      else if (node.type !== 'MemberExpression') return undefined;
      else if (this.global(node.object, scope) === '$state') return memberKey(node);
      else node = node.object;
    }
  }

  walkList(nodes, scope) {
    for (const n of nodes) if (n) this.walk(n, scope);
  }

  walk(node, scope) {
    switch (node.type) {
      case 'Identifier': return this.reference(node, scope);
      case 'MemberExpression': return this.member(node, scope);
      case 'CallExpression': return this.call(node, scope);
      case 'AssignmentExpression':
        if (node.operator === '=') {
          this.pattern(node.left, scope);
          return this.source(node.left, node.right, scope);
        }
        this.update(node.left, scope);
        return this.walk(node.right, scope);
      case 'UpdateExpression': return this.update(node.argument, scope);
      case 'UnaryExpression': {
        let arg = node.argument;
        if (node.operator === 'delete') {
          if (arg.type === 'ChainExpression') arg = arg.expression;
          return arg.type === 'MemberExpression' ? this.assignMember(arg, false, scope) : this.walk(arg, scope);
        }
        if (node.operator === 'typeof' && this.global(arg, scope)) return undefined; // touches nothing
        return this.walk(arg, scope);
      }
      case 'BinaryExpression':
        if (node.operator === 'in' && this.global(node.right, scope) === '$state') {
          this.add('state:read:*');
          return this.walk(node.left, scope);
        }
        break;
      case 'VariableDeclaration':
        for (const d of node.declarations) {
          this.pattern(d.id, scope);
          this.source(d.id, d.init, scope);
        }
        return undefined;
      case 'FunctionDeclaration': case 'FunctionExpression': case 'ArrowFunctionExpression':
        return this.func(node, scope);
      case 'ClassDeclaration': case 'ClassExpression': return this.klass(node, scope);
      case 'BlockStatement': return this.walkList(node.body, blockScope(node.body, scope));
      case 'SwitchStatement': {
        this.walk(node.discriminant, scope);
        const inner = blockScope(node.cases.flatMap((c) => c.consequent), scope);
        for (const c of node.cases) {
          if (c.test) this.walk(c.test, inner);
          this.walkList(c.consequent, inner);
        }
        return undefined;
      }
      case 'ForStatement': case 'ForInStatement': case 'ForOfStatement': return this.loop(node, scope);
      case 'CatchClause': {
        const inner = node.param ? new Scope(scope, patternNames(node.param, new Set())) : scope;
        if (node.param) this.pattern(node.param, inner);
        return this.walk(node.body, inner);
      }
      case 'Property': // of an object literal; patterns go through pattern()
        if (node.computed) this.walk(node.key, scope);
        return this.walk(node.value, scope);
      case 'LabeledStatement': return this.walk(node.body, scope);
      case 'BreakStatement': case 'ContinueStatement': case 'MetaProperty': case 'PrivateIdentifier':
        return undefined;
    }
    return forEachChild(node, (c) => this.walk(c, scope));
  }

  reference(node, scope) {
    if (scope.has(node.name)) return;
    if (WILDCARDS[node.name]) this.escape(node.name);
    // The wrapper's `arguments` holds every global: arguments[0] is $state.
    else if (node.name === 'arguments') this.escapeAll(scope);
  }

  member(node, scope) {
    const g = this.global(node.object, scope);
    if (g === '$state') this.add(`state:read:${memberKey(node)}`);
    else if (g === '$ext') this.add(`ext:${memberKey(node)}`);
    else if (g) this.escape(g); // $view.focus or $emit.call taken as a value: target unknown
    else this.walk(node.object, scope);
    if (node.computed) this.walk(node.property, scope);
  }

  call(node, scope) {
    const { callee, arguments: args } = node;
    if (this.global(callee, scope) === '$emit') {
      this.nameArgument(args, 'events:emit:');
      return this.walkList(args, scope);
    }
    // Direct eval sees the handler's scope, so it can use every global.
    if (callee.type === 'Identifier' && callee.name === 'eval' && !scope.has('eval')) this.escapeAll(scope);
    if (callee.type === 'MemberExpression') {
      const method = callee.computed ? staticKey(callee.property) : callee.property.name;
      const g = this.global(callee.object, scope);
      if (g === '$view') {
        if (method === null) this.add('view:update:*');
        else this.nameArgument(args, 'view:update:');
        if (callee.computed) this.walk(callee.property, scope);
        return this.walkList(args, scope);
      }
      if (method !== null && isMutator(method)) {
        const key = this.stateRoot(callee.object, scope);
        if (key !== undefined) this.add(`state:write:${key}`);
      }
      if (READ_ALL.has(method) && callee.object.type === 'Identifier' && callee.object.name === 'Object' &&
          !scope.has('Object') && args.length && this.global(args[0], scope) === '$state') {
        this.add('state:read:*');
        return this.walkList(args.slice(1), scope);
      }
    }
    this.walk(callee, scope);
    return this.walkList(args, scope);
  }

  // The first argument names what is used: an event or a component id.
  nameArgument(args, prefix) {
    const first = args[0];
    if (!first) return;
    const name = first.type === 'SpreadElement' ? null : staticString(first);
    if (name !== null) this.add(prefix + name);
    else if (first.type !== 'Literal') this.add(prefix + '*'); // a number etc. fails whatever is granted
  }

  // Left side of `=`, of for-in/of, or a declaration: names bind or rebind
  // (no capability), members are written.
  pattern(p, scope) {
    switch (p.type) {
      case 'ObjectPattern':
        for (const prop of p.properties) {
          if (prop.type === 'RestElement') {
            this.pattern(prop.argument, scope);
          } else {
            if (prop.computed) this.walk(prop.key, scope);
            this.pattern(prop.value, scope);
          }
        }
        break;
      case 'ArrayPattern': for (const e of p.elements) if (e) this.pattern(e, scope); break;
      case 'AssignmentPattern':
        this.pattern(p.left, scope);
        this.source(p.left, p.right, scope);
        break;
      case 'RestElement': this.pattern(p.argument, scope); break;
      case 'MemberExpression': this.assignMember(p, false, scope); break;
    }
  }

  // The value a pattern is assigned from. Destructuring $state or $ext reads
  // just the named keys; a rest element or computed key reads any of them.
  source(p, init, scope) {
    if (!init) return;
    const g = this.global(init, scope);
    if (p.type === 'ObjectPattern' && (g === '$state' || g === '$ext')) {
      const prefix = g === '$state' ? 'state:read:' : 'ext:';
      for (const prop of p.properties) this.add(prefix + (prop.type === 'RestElement' ? '*' : propertyKey(prop)));
      return;
    }
    this.walk(init, scope);
  }

  // Target of a compound assignment or ++/--: read and written.
  update(target, scope) {
    if (target.type === 'MemberExpression') this.assignMember(target, true, scope);
    else this.walk(target, scope);
  }

  assignMember(node, alsoRead, scope) {
    if (this.global(node.object, scope) === '$state') {
      const key = memberKey(node);
      this.add(`state:write:${key}`);
      if (alsoRead) this.add(`state:read:${key}`);
      if (node.computed) this.walk(node.property, scope);
      return;
    }
    // $state.k.x = v reads k and changes it in place.
    const key = this.stateRoot(node.object, scope);
    if (key !== undefined) this.add(`state:write:${key}`);
    this.walk(node, scope);
  }

  loop(node, scope) {
    const head = node.type === 'ForStatement' ? node.init : node.left;
    const inner = head && head.type === 'VariableDeclaration' && head.kind !== 'var'
      ? new Scope(scope, lexicalNames([head], new Set()))
      : scope;
    if (node.type === 'ForStatement') {
      for (const n of [node.init, node.test, node.update]) if (n) this.walk(n, inner);
    } else {
      if (head.type === 'VariableDeclaration') this.walk(head, inner);
      else this.pattern(head, scope);
      if (node.type === 'ForInStatement' && this.global(node.right, scope) === '$state') this.add('state:read:*');
      else this.walk(node.right, inner);
    }
    this.walk(node.body, inner);
  }

  func(node, scope) {
    let outer = scope;
    if (node.type === 'FunctionExpression' && node.id) outer = new Scope(scope, new Set([node.id.name]));
    // Parameter defaults cannot see the body's declarations: two scopes.
    const params = new Set(node.type === 'ArrowFunctionExpression' ? [] : ['arguments']);
    for (const p of node.params) patternNames(p, params);
    const paramScope = new Scope(outer, params);
    for (const p of node.params) this.pattern(p, paramScope);
    if (node.body.type !== 'BlockStatement') return this.walk(node.body, paramScope);
    const names = lexicalNames(node.body.body, varNames(node.body, new Set()));
    return this.walkList(node.body.body, new Scope(paramScope, names));
  }

  klass(node, scope) {
    if (node.superClass) this.walk(node.superClass, scope);
    const inner = node.type === 'ClassExpression' && node.id ? new Scope(scope, new Set([node.id.name])) : scope;
    for (const m of node.body.body) {
      if (m.type === 'StaticBlock') {
        this.walkList(m.body, new Scope(inner, lexicalNames(m.body, varNames(m, new Set()))));
        continue;
      }
      if (m.computed) this.walk(m.key, inner);
      if (m.value) this.walk(m.value, inner);
    }
  }

  // The handler body. A top-level `var $state` is the wrapper's parameter
  // itself, not a new binding, so it still holds the global (until assigned);
  // only a function declaration replaces it before any code runs.
  handler(fn) {
    const body = fn.body.body;
    const names = lexicalNames(body, varNames(fn.body, new Set()));
    for (const g of [...GLOBALS, 'arguments']) {
      if (!body.some((s) => s.type === 'FunctionDeclaration' && s.id.name === g)) names.delete(g);
    }
    this.walkList(body, new Scope(null, names));
  }
}

// Snippet as the runtime builds it: the line, cut to a window around the
// column for minified code, and a caret under the column (tabs kept).
const SNIPPET_BEFORE = HANDLER.snippetBefore;
const SNIPPET_WIDTH = HANDLER.snippetWidth;

function snippet(code, offset) {
  let start = offset;
  let end = offset;
  while (start > 0 && !acorn.isNewLine(code.charCodeAt(start - 1))) start--;
  while (end < code.length && !acorn.isNewLine(code.charCodeAt(end))) end++;
  const from = Math.max(start, offset - SNIPPET_BEFORE);
  const text = code.slice(from, Math.min(end, from + SNIPPET_WIDTH));
  let caret = '';
  for (let i = from; i < offset; i++) caret += code[i] === '\t' ? '\t' : ' ';
  return `${text}\n${caret}^`;
}

// `offset` is in the handler's own source; a position in the wrapper's
// suffix (code that ends too early) is reported at the end of the handler.
// A null offset: no location.
function compilationError(message, code, offset) {
  const err = new Error(`SyntaxError: ${message}`);
  err.code = 'COMPILATION_ERROR';
  err.location = null;
  err.snippet = null;
  if (offset !== null) {
    const at = Math.max(0, Math.min(offset, code.length));
    const { line, column } = acorn.getLineInfo(code, at);
    err.location = { line, column: column + 1 };
    err.snippet = snippet(code, at);
  }
  return err;
}

// `shown` is what errors show: the TypeScript `code` was stripped from
// (same positions), or `code` itself.
function parseHandler(code, shown = code) {
  const source = PREFIX + code + SUFFIX;
  let program;
  try {
    program = acorn.parse(source, PARSE_OPTIONS);
  } catch (err) {
    if (!(err instanceof SyntaxError) || typeof err.pos !== 'number') throw err;
    // acorn appends " (line:column)" in the wrapped source's coordinates.
    const suffix = err.loc ? ` (${err.loc.line}:${err.loc.column})` : '';
    const message = suffix && err.message.endsWith(suffix) ? err.message.slice(0, -suffix.length) : err.message;
    throw compilationError(message, shown, err.pos - PREFIX.length);
  }
  const stmt = program.body[0];
  const fn = stmt.expression;
  if (program.body.length === 1 && fn.type === 'FunctionExpression' && fn.start === 1 && fn.end === source.length - 1) {
    return fn;
  }
  // The code closed the wrapper (`}); (function () {`), which the wrapped
  // parse accepts; as a function body that `}` is a stray token.
  throw compilationError(
    "Unexpected token '}': handler code must be the body of a function (it closed the wrapper)",
    shown, wrapperEnd(stmt) - 1 - PREFIX.length);
}

// End of the wrapper function inside a statement that goes on past it.
function wrapperEnd(stmt) {
  let end = stmt.end;
  const visit = (node) => {
    if (node.type === 'FunctionExpression' && node.start === 1) end = node.end;
    else if (node.start <= 1) forEachChild(node, visit);
  };
  visit(stmt);
  return end;
}

// options: { language: 'js' | 'ts' }, default 'js'.
function inferCapabilities(code, options) {
  if (typeof code !== 'string') throw new TypeError('inferCapabilities(code): code must be a string');
  let js = code;
  if (languageOf(options) === 'ts') {
    const stripped = strip(code);
    if (stripped.js === undefined) throw compilationError(stripped.message, code, stripped.offset);
    js = stripped.js;
  }
  const walker = new Walker();
  walker.handler(parseHandler(js, code));
  return [...walker.tokens].sort();
}

module.exports = { inferCapabilities };
