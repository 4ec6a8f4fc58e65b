/**
 * Source-pattern matching: `*` any run of characters ("/" included), `?` one character, as
 * BigQuery's object tables read them. The reference is JavaScript's own regular-expression
 * engine on the same patterns (fine for short ones, exponential on many stars).
 */
import { globMatcher } from '../src/glob';
import { seededRandom } from '../src/models';

const reference = (pattern: string) =>
  new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    's',
  );

test('agrees with a regular-expression engine on 20 000 random patterns and names', () => {
  const random = seededRandom(34);
  const pick = (alphabet: string, length: number) => Array.from({ length }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
  let matched = 0;
  for (let i = 0; i < 20_000; i++) {
    const pattern = pick('ab/*?', Math.floor(random() * 8));
    const name = pick('ab/', Math.floor(random() * 10));
    const expected = reference(pattern).test(name);
    expect([pattern, name, globMatcher(pattern)(name)]).toEqual([pattern, name, expected]);
    if (expected) matched++;
  }
  expect(matched).toBeGreaterThan(2000); // both outcomes are well represented
});

test('30 stars against a long name that almost matches: answered (a backtracking engine would not finish)', () => {
  const pattern = `/data/${'a*'.repeat(30)}b`;
  const name = `/data/${'a'.repeat(300)}`;
  expect(globMatcher(pattern)(name)).toBe(false);
  expect(globMatcher(pattern)(`${name}b`)).toBe(true);
});
