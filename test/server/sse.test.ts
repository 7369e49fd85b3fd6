import { describe, expect, it } from 'vitest';
import { encodeComment, encodeEvent, encodeRetry } from '../../src/server/sse.js';

describe('SSE encoder', () => {
  it('writes id, event, retry and data fields, ending with a blank line', () => {
    expect(encodeEvent({ id: '42', event: 'stock', retry: 2000, data: '{"remaining":3}' })).toBe(
      'id: 42\nevent: stock\nretry: 2000\ndata: {"remaining":3}\n\n',
    );
  });

  it('splits multi-line data into one data line per line, for every line ending', () => {
    expect(encodeEvent({ data: 'a\nb\r\nc\rd' })).toBe('data: a\ndata: b\ndata: c\ndata: d\n\n');
    expect(encodeEvent({ data: '' })).toBe('data: \n\n');
    expect(encodeEvent({ data: 'trailing\n' })).toBe('data: trailing\ndata: \n\n');
  });

  it('refuses ids and event names that would forge other fields', () => {
    expect(() => encodeEvent({ id: '1\ndata: x', data: 'y' })).toThrow(/id/);
    expect(() => encodeEvent({ id: 'a\0b', data: 'y' })).toThrow(/NUL/);
    expect(() => encodeEvent({ event: 'a\rb', data: 'y' })).toThrow(/event/);
    expect(() => encodeEvent({ retry: -1, data: 'y' })).toThrow(/retry/);
    expect(() => encodeEvent({ retry: 1.5, data: 'y' })).toThrow(/retry/);
  });

  it('writes comments (heartbeats), one per line', () => {
    expect(encodeComment('hb')).toBe(': hb\n\n');
    expect(encodeComment()).toBe(': \n\n');
    expect(encodeComment('a\nb')).toBe(': a\n: b\n\n');
  });

  it('writes a bare retry hint', () => {
    expect(encodeRetry(5000)).toBe('retry: 5000\n\n');
    expect(() => encodeRetry(-5)).toThrow();
  });
});
