import { describe, expect, it } from 'vitest';
import {
  encodeCommand,
  RedisReplyError,
  RespDecoder,
  RespProtocolError,
  type RespReply,
} from '../../src/redis/resp.js';

// RESP2 itself (src/redis/resp.ts), without a socket: what goes on the wire for a command and
// what a byte stream decodes to, however the network cuts it. The client's behaviour against a
// real Redis is test/redis/resp-client.test.ts.

const stream = Buffer.from(
  '+OK\r\n' +
    '-NOSCRIPT No matching script\r\n' +
    ':-42\r\n' +
    '$9\r\nhéllo\r\nx\r\n' +
    '$-1\r\n' +
    '*3\r\n:1\r\n*2\r\n$1\r\na\r\n*0\r\n-ERR inside\r\n' +
    '*-1\r\n',
  'utf8',
);

function decodeInChunks(bytes: Buffer, cut: (offset: number) => number): unknown[] {
  const decoder = new RespDecoder();
  const replies: unknown[] = [];
  const collect = (reply: RespReply | RedisReplyError) => {
    replies.push(reply instanceof RedisReplyError ? { error: reply.message } : reply);
    return true;
  };
  for (let offset = 0; offset < bytes.length;) {
    const end = Math.min(bytes.length, offset + cut(offset));
    decoder.decode(bytes.subarray(offset, end), collect);
    offset = end;
  }
  return replies;
}

const expected = [
  'OK',
  { error: 'NOSCRIPT No matching script' },
  -42,
  'héllo\r\nx',
  null,
  [1, ['a', []], 'ERR inside'],
  null,
];

describe('RESP2 protocol', () => {
  it('encodes a command as an array of bulk strings, counting bytes rather than characters', () => {
    expect(encodeCommand(['SET', 'k', 'wörld', 7])).toBe(
      '*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\nwörld\r\n$1\r\n7\r\n',
    );
  });

  it('decodes every reply type in order, whether the stream arrives whole, a byte at a time, or cut anywhere', () => {
    expect(decodeInChunks(stream, () => stream.length)).toEqual(expected);
    expect(decodeInChunks(stream, () => 1)).toEqual(expected);
    for (let first = 1; first < stream.length; first += 1) {
      expect(decodeInChunks(stream, (offset) => (offset === 0 ? first : stream.length))).toEqual(
        expected,
      );
    }
  });

  it('decodes what it is fed back to the encoder: a command is a valid reply of its own', () => {
    const args = ['EVALSHA', 'abc', 2, 'k1', 'k2', ''];
    expect(decodeInChunks(Buffer.from(encodeCommand(args)), () => 3)).toEqual([args.map(String)]);
  });

  it('stops when the receiver wants no more replies', () => {
    const decoder = new RespDecoder();
    const seen: unknown[] = [];
    decoder.decode(stream, (reply) => {
      seen.push(reply);
      return seen.length < 2;
    });
    expect(seen).toHaveLength(2);
  });

  it('refuses bytes that are not RESP2, and a reset forgets a reply cut in half', () => {
    const decoder = new RespDecoder();
    expect(() => decoder.decode(Buffer.from('+OK\r\n!bad\r\n'), () => true)).toThrow(
      RespProtocolError,
    );
    const replies: unknown[] = [];
    decoder.decode(Buffer.from('$5\r\nhel'), (reply) => replies.push(reply) > 0);
    decoder.reset();
    decoder.decode(Buffer.from(':7\r\n'), (reply) => replies.push(reply) > 0);
    expect(replies).toEqual([7]);
  });
});
