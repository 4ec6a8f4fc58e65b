/** Object-table wildcards, shared by the config's checks, the local listing and output checks. */
import { fileURLToPath } from 'node:url';

/**
 * A matcher for a pattern of `*` (any run of characters, "/" included) and `?` (one
 * character). Not a regular expression: a backtracking engine took 38 s over 20 `*`. The
 * pattern's literal runs are found left to right, each at its earliest place (which is
 * enough for `*`), so a test costs at most the name's length times the pattern's.
 */
export function globMatcher(pattern: string): (name: string) => boolean {
  const parts = pattern.split('*');
  const first = parts[0]!;
  const last = parts.length > 1 ? parts[parts.length - 1]! : undefined;
  const middle = parts.slice(1, -1).filter((part) => part.length > 0);
  const fits = (name: string, at: number, part: string) => {
    for (let i = 0; i < part.length; i++) if (part[i] !== '?' && part[i] !== name[at + i]) return false;
    return true;
  };
  return (name: string) => {
    if (last === undefined) return name.length === first.length && fits(name, 0, first);
    if (name.length < first.length + last.length || !fits(name, 0, first) || !fits(name, name.length - last.length, last)) return false;
    let at = first.length;
    const end = name.length - last.length;
    for (const part of middle) {
      let found = -1;
      for (let i = at; i + part.length <= end; i++) {
        if (fits(name, i, part)) {
          found = i;
          break;
        }
      }
      if (found < 0) return false;
      at = found + part.length;
    }
    return true;
  };
}

/** Bounds on a source pattern: beyond them a pattern is a mistake (or an attack), not a bucket. */
export const MAX_PATTERN_LENGTH = 4096;
export const MAX_PATTERN_WILDCARDS = 64;

/** A source pattern (a file:// URI with `*` and `?` wildcards) as a filesystem pattern. */
export function patternToPath(uri: string): string {
  return fileURLToPath(uri.replace(/\*/g, '%2A').replace(/\?/g, '%3F')).replace(/%2A/g, '*').replace(/%3F/g, '?');
}
