import { describe, expect, it } from 'vitest';
import { truncate } from './text.ts';

describe('truncate', () => {
  it('keeps a text that fits and cuts a longer one, saying how much it left out', () => {
    expect(truncate('abc', 3)).toBe('abc');
    expect(truncate('', 0)).toBe('');
    expect(truncate('abcdef', 2)).toBe('ab… [4 more characters]');
  });
});
