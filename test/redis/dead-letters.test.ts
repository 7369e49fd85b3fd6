import { describe, expect, it } from 'vitest';
import {
  deadLetterFields,
  parseDeadLetter,
  type DeadLetter,
} from '../../src/redis/dead-letters.js';

const letter: DeadLetter = {
  origin: '1700000000000-0',
  reason: 'unparseable',
  detail: 'not an order entry',
  deliveries: 1,
  consumer: 'host-1',
  at: 1700000000500,
  // A poison entry may carry fields named like the metadata; they must not leak into it.
  fields: ['reason', 'forged', 'origin', '0-1', 'id', 'x'],
};

describe('dead letters', () => {
  it('round-trip with the original fields intact and unable to impersonate the metadata', () => {
    const parsed = parseDeadLetter(deadLetterFields(letter));
    expect(parsed).toEqual(letter);
  });

  it('keep a deleted entry as null fields', () => {
    expect(parseDeadLetter(deadLetterFields({ ...letter, fields: null }))?.fields).toBeNull();
  });

  it('refuse what is not a dead letter', () => {
    expect(parseDeadLetter(['id', 'x'])).toBeUndefined();
    expect(parseDeadLetter(['origin', '1-0', 'reason', 'boredom', 'entry', '[]'])).toBeUndefined();
    expect(parseDeadLetter(['origin', '1-0', 'reason', 'deleted', 'entry', '{'])).toBeUndefined();
  });
});
