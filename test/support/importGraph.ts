/**
 * Reads every import of the TypeScript files under a folder: static imports (`import type`
 * included), `export … from`, side-effect imports and dynamic `import()`. A small lexer rather
 * than regular expressions over the text, so that `import` inside a comment, a string, a
 * template or a regular expression is never taken for one.
 */
import fs from 'node:fs';
import path from 'node:path';

export type ImportKind = 'static' | 'type' | 'export' | 'side-effect' | 'dynamic';

export interface SourceImport {
  /** The importing file, relative to the repository root, with forward slashes. */
  from: string;
  specifier: string;
  kind: ImportKind;
  /** For a relative specifier: the imported file, relative to the repository root. */
  resolved: string | null;
  line: number;
}

type Token = { type: 'word' | 'string' | 'punct'; value: string; line: number };

// After these a `/` starts a regular expression rather than a division.
const regexAfterPunct = new Set(['(', ',', '=', ':', '[', '!', '&', '|', '?', '{', '}', ';', '+', '-', '*', '%', '<', '>', '~', '^', '=>']);
const regexAfterWord = new Set(['return', 'typeof', 'case', 'do', 'else', 'in', 'of', 'new', 'delete', 'void', 'throw', 'yield', 'await']);

function tokenize(source: string, file: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let i = 0;
  // Brace depth of each template literal whose `${` expression is being read.
  const templateDepths: number[] = [];
  let braceDepth = 0;

  const last = () => tokens[tokens.length - 1];
  const fail = (what: string): never => {
    throw new Error(`${file}:${line}: ${what}`);
  };

  const readString = (quote: string): string => {
    let value = '';
    i++;
    while (i < source.length && source[i] !== quote) {
      if (source[i] === '\\') {
        value += source[i + 1];
        i += 2;
        continue;
      }
      if (source[i] === '\n') fail('unterminated string');
      value += source[i];
      i++;
    }
    if (i >= source.length) fail('unterminated string');
    i++;
    return value;
  };

  // Reads template text up to its end or to a `${`; returns whether an expression starts.
  const readTemplateText = (): boolean => {
    while (i < source.length) {
      const ch = source[i];
      if (ch === '\\') {
        i += 2;
        continue;
      }
      if (ch === '\n') line++;
      if (ch === '`') {
        i++;
        return false;
      }
      if (ch === '$' && source[i + 1] === '{') {
        i += 2;
        return true;
      }
      i++;
    }
    return fail('unterminated template literal');
  };

  while (i < source.length) {
    const ch = source[i]!;
    if (ch === '\n') {
      line++;
      i++;
    } else if (/\s/.test(ch)) {
      i++;
    } else if (ch === '/' && source[i + 1] === '/') {
      while (i < source.length && source[i] !== '\n') i++;
    } else if (ch === '/' && source[i + 1] === '*') {
      const end = source.indexOf('*/', i + 2);
      if (end < 0) fail('unterminated comment');
      for (const c of source.slice(i, end)) if (c === '\n') line++;
      i = end + 2;
    } else if (ch === '"' || ch === "'") {
      const start = line;
      tokens.push({ type: 'string', value: readString(ch), line: start });
    } else if (ch === '`') {
      i++;
      if (readTemplateText()) {
        templateDepths.push(braceDepth);
        braceDepth++;
      }
      tokens.push({ type: 'punct', value: 'template', line });
    } else if (ch === '/') {
      const previous = last();
      const startsRegex = !previous || (previous.type === 'punct' && regexAfterPunct.has(previous.value)) || (previous.type === 'word' && regexAfterWord.has(previous.value));
      if (startsRegex) {
        i++;
        let inClass = false;
        while (i < source.length) {
          const c = source[i];
          if (c === '\\') {
            i += 2;
            continue;
          }
          if (c === '\n') fail('unterminated regular expression');
          if (c === '[') inClass = true;
          else if (c === ']') inClass = false;
          else if (c === '/' && !inClass) break;
          i++;
        }
        i++;
        while (i < source.length && /[a-z]/i.test(source[i]!)) i++;
        tokens.push({ type: 'punct', value: 'regex', line });
      } else {
        tokens.push({ type: 'punct', value: '/', line });
        i++;
      }
    } else if (/[A-Za-z_$]/.test(ch)) {
      let end = i + 1;
      while (end < source.length && /[\w$]/.test(source[end]!)) end++;
      tokens.push({ type: 'word', value: source.slice(i, end), line });
      i = end;
    } else if (/[0-9]/.test(ch)) {
      let end = i + 1;
      while (end < source.length && /[\w.]/.test(source[end]!)) end++;
      tokens.push({ type: 'word', value: source.slice(i, end), line });
      i = end;
    } else if (ch === '{') {
      braceDepth++;
      tokens.push({ type: 'punct', value: ch, line });
      i++;
    } else if (ch === '}') {
      braceDepth--;
      if (templateDepths.length > 0 && templateDepths[templateDepths.length - 1] === braceDepth) {
        templateDepths.pop();
        i++;
        if (readTemplateText()) {
          templateDepths.push(braceDepth);
          braceDepth++;
        }
        tokens.push({ type: 'punct', value: 'template', line });
      } else {
        tokens.push({ type: 'punct', value: ch, line });
        i++;
      }
    } else if (ch === '=' && source[i + 1] === '>') {
      tokens.push({ type: 'punct', value: '=>', line });
      i += 2;
    } else {
      tokens.push({ type: 'punct', value: ch, line });
      i++;
    }
  }
  return tokens;
}

/** The imports of one file's source text. */
export function parseImports(source: string, file: string): Array<Omit<SourceImport, 'resolved'>> {
  const tokens = tokenize(source, file);
  const found: Array<Omit<SourceImport, 'resolved'>> = [];
  const at = (index: number) => tokens[index];
  const isPunct = (index: number, value: string) => at(index)?.type === 'punct' && at(index)?.value === value;
  const isWord = (index: number, value: string) => at(index)?.type === 'word' && at(index)?.value === value;

  // The `from 'x'` that ends a declaration starting at `index`, before the next `;`.
  const fromClause = (index: number): string | null => {
    for (let j = index; j < tokens.length; j++) {
      if (isPunct(j, ';')) return null;
      if (isWord(j, 'from') && at(j + 1)?.type === 'string') return at(j + 1)!.value;
    }
    return null;
  };

  for (let k = 0; k < tokens.length; k++) {
    const token = tokens[k]!;
    if (token.type !== 'word') continue;
    // `x.import` or `{ import: … }` is a property, not a keyword.
    if (isPunct(k - 1, '.') || isPunct(k + 1, ':')) continue;
    if (token.value === 'import') {
      if (isPunct(k + 1, '(')) {
        const argument = at(k + 2);
        if (argument?.type !== 'string' || !isPunct(k + 3, ')')) {
          throw new Error(`${file}:${token.line}: a dynamic import() whose specifier is not a plain string literal cannot be checked`);
        }
        found.push({ from: file, specifier: argument.value, kind: 'dynamic', line: token.line });
        continue;
      }
      if (isPunct(k + 1, '.')) continue; // import.meta
      if (at(k + 1)?.type === 'string') {
        found.push({ from: file, specifier: at(k + 1)!.value, kind: 'side-effect', line: token.line });
        continue;
      }
      const specifier = fromClause(k + 1);
      if (specifier === null) throw new Error(`${file}:${token.line}: an import without a from clause`);
      const typeOnly = isWord(k + 1, 'type') && !isWord(k + 2, 'from') && !isPunct(k + 2, ',');
      found.push({ from: file, specifier, kind: typeOnly ? 'type' : 'static', line: token.line });
    } else if (token.value === 'export') {
      const next = k + (isWord(k + 1, 'type') ? 2 : 1);
      if (!isPunct(next, '{') && !isPunct(next, '*')) continue;
      const specifier = fromClause(next);
      if (specifier !== null) found.push({ from: file, specifier, kind: 'export', line: token.line });
    }
  }
  return found;
}

function listTypeScriptFiles(root: string, folder: string): string[] {
  const files: string[] = [];
  for (const entry of fs.readdirSync(path.join(root, folder), { withFileTypes: true })) {
    const relative = path.posix.join(folder, entry.name);
    if (entry.isDirectory()) files.push(...listTypeScriptFiles(root, relative));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) files.push(relative);
  }
  return files.sort();
}

/** Every import of every .ts file under `folder` (relative to `root`). */
export function readImports(root: string, folder: string): { files: string[]; imports: SourceImport[] } {
  const files = listTypeScriptFiles(root, folder);
  const imports: SourceImport[] = [];
  for (const file of files) {
    for (const found of parseImports(fs.readFileSync(path.join(root, file), 'utf8'), file)) {
      const resolved = found.specifier.startsWith('.') ? path.posix.normalize(path.posix.join(path.posix.dirname(file), found.specifier)) : null;
      imports.push({ ...found, resolved });
    }
  }
  return { files, imports };
}

/**
 * One import cycle among `files`, as the path of files that closes it (the first file
 * repeated at the end), or null when there is none.
 */
export function findCycle(files: string[], imports: SourceImport[]): string[] | null {
  const edges = new Map<string, string[]>();
  for (const file of files) edges.set(file, []);
  for (const item of imports) {
    if (item.resolved && edges.has(item.resolved)) edges.get(item.from)!.push(item.resolved);
  }
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string): string[] | null => {
    state.set(file, 'open');
    stack.push(file);
    for (const next of edges.get(file) ?? []) {
      if (state.get(next) === 'open') return [...stack.slice(stack.indexOf(next)), next];
      if (!state.has(next)) {
        const cycle = visit(next);
        if (cycle) return cycle;
      }
    }
    stack.pop();
    state.set(file, 'done');
    return null;
  };
  for (const file of files) {
    if (!state.has(file)) {
      const cycle = visit(file);
      if (cycle) return cycle;
    }
  }
  return null;
}
