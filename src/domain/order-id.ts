import { randomFillSync } from 'node:crypto';

// UUIDv7 (RFC 9562): 48-bit ms timestamp, version 7, then random bits. Time-ordered, so
// order ids sort by acceptance and index well in PostgreSQL. Random bytes come from a pool
// refilled in bulk: one getrandom call per 512 ids instead of one per id.
const POOL_IDS = 512;
const pool = Buffer.alloc(POOL_IDS * 10);
let offset = pool.length;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function newOrderId(now = Date.now()): string {
  if (offset === pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const r = pool.subarray(offset, offset + 10);
  offset += 10;
  const ts = now.toString(16).padStart(12, '0');
  const h = (i: number) => HEX[r[i] ?? 0] ?? '00';
  return (
    `${ts.slice(0, 8)}-${ts.slice(8, 12)}-` +
    `7${HEX[(r[0] ?? 0) & 0x0f]?.[1] ?? '0'}${h(1)}-` +
    `${HEX[((r[2] ?? 0) & 0x3f) | 0x80] ?? '80'}${h(3)}-` +
    `${h(4)}${h(5)}${h(6)}${h(7)}${h(8)}${h(9)}`
  );
}
