import { describe, expect, it } from 'vitest';
import {
  entryTime,
  parseAutoClaimReply,
  parsePendingReply,
  parseReadReply,
  UnexpectedReplyError,
} from '../../src/redis/streams.js';

describe('stream replies', () => {
  it('reads an XREADGROUP reply, a timeout, and a deleted entry in a history read', () => {
    expect(parseReadReply(null)).toEqual([]);
    expect(
      parseReadReply([
        [
          's1',
          [
            ['1-0', ['id', 'x']],
            ['2-0', null],
          ],
        ],
        ['s2', []],
      ]),
    ).toEqual([
      {
        stream: 's1',
        entries: [
          { id: '1-0', fields: ['id', 'x'] },
          { id: '2-0', fields: null },
        ],
      },
      { stream: 's2', entries: [] },
    ]);
  });

  it('reads XAUTOCLAIM with its deleted ids (Redis 7) and nil entries (Redis 6.2)', () => {
    expect(parseAutoClaimReply(['0-0', [['5-1', ['a', 'b']], null], ['4-0']])).toEqual({
      next: '0-0',
      entries: [{ id: '5-1', fields: ['a', 'b'] }],
      deleted: ['4-0'],
    });
    expect(parseAutoClaimReply(['7-0', []])).toEqual({ next: '7-0', entries: [], deleted: [] });
  });

  it('reads the extended XPENDING form', () => {
    expect(parsePendingReply([['1-0', 'w1', 1200, 3]])).toEqual([
      { id: '1-0', consumer: 'w1', idleMs: 1200, deliveries: 3 },
    ]);
  });

  it('refuses a reply of another shape instead of guessing', () => {
    expect(() => parseReadReply('OK')).toThrow(UnexpectedReplyError);
    expect(() => parseReadReply([['s', [[1, []]]]])).toThrow(UnexpectedReplyError);
    expect(() => parseAutoClaimReply([0, []])).toThrow(UnexpectedReplyError);
    expect(() => parsePendingReply([['1-0', 'w', '5', 1]])).toThrow(UnexpectedReplyError);
  });

  it('takes the append time from an entry id', () => {
    expect(entryTime('1700000000123-4')).toBe(1700000000123);
    expect(entryTime('garbage')).toBe(0);
  });
});
