// Text one user wrote, as another user reads it (ADR 0047): ksctl, the console and the notifications show it through
// these functions. No runtime dependency, so the SPA and ksctl import `@keyserver/api-contract/visible-text` alone.

/**
 * Characters a reader does not see as themselves: controls (C0, DEL, C1: terminal escape sequences, CR, newlines),
 * format characters (bidi embeddings, overrides, isolates and marks, zero-width characters, soft hyphen, tags),
 * line and paragraph separators, lone surrogates, and the Hangul fillers (letters drawn blank).
 */
const HIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\u115f\u1160\u3164\uffa0]/gu;
const HIDDEN_ONE = new RegExp(HIDDEN.source, 'u');

/** Whether `s` holds a character {@link visibleText} escapes. */
export function hasHiddenCharacters(s: string): boolean {
  return HIDDEN_ONE.test(s);
}

/** `s` with each hidden character written as `\u{hex}` (its code point), everything else unchanged. */
export function visibleText(s: string): string {
  return s.replace(HIDDEN, (c) => `\\u{${(c.codePointAt(0) ?? 0).toString(16)}}`);
}

/** Where the text is shown: a terminal or plain text obeys line breaks and tabs; HTML draws them as a space. */
export type TextMedium = 'terminal' | 'html';

/** The hidden characters an HTML page needs named: tab, CR and LF are collapsed whitespace there, not controls. */
const BREAK = /^[\t\n\r]$/;

/**
 * A JSON value with every string, object keys included, through {@link visibleText}. For `html` tab, CR and LF stay
 * (a browser draws them as a space, so they forge nothing, and a certificate's PEM inside the JSON keeps its lines).
 */
export function visibleJson<T>(value: T, medium: TextMedium = 'terminal'): T {
  const text = medium === 'html' ? (s: string) => s.replace(HIDDEN, (c) => (BREAK.test(c) ? c : visibleText(c))) : visibleText;
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return text(v);
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [text(k), walk(x)]));
    return v;
  };
  return walk(value) as T;
}

/**
 * JSON text with the hidden characters JSON.stringify leaves raw (C1, format characters, separators) written as
 * JSON's own `\uXXXX` escapes: the same value for a parser, nothing a terminal obeys or hides. Valid JSON holds such
 * characters only inside strings (tab, CR and newline only as whitespace between tokens, which stays), so this may
 * be applied to any JSON text, a stream of JSON lines included.
 */
export function jsonEscapeHidden(json: string): string {
  return json.replace(HIDDEN, (c) =>
    c === '\n' || c === '\r' || c === '\t' ? c : Array.from({ length: c.length }, (_, i) => `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`).join(''),
  );
}

/** JSON.stringify(value) through {@link jsonEscapeHidden}. */
export function jsonWithVisibleText(value: unknown): string {
  return jsonEscapeHidden(JSON.stringify(value));
}
