// Redis Cluster's key -> slot mapping (the cluster specification's HASH_SLOT): CRC16-XMODEM of
// the key, or of its hash tag (the part between the first `{` and the next `}`, when that part
// is not empty), modulo 16384. Every key of a product shares the tag `{p:<id>}`, so all of
// them, and the buy script that touches them together, live in one slot.

export const SLOT_COUNT = 16_384;

const TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i += 1) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit += 1) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
    table[i] = crc & 0xffff;
  }
  return table;
})();

/** CRC16-XMODEM (polynomial 0x1021, initial 0) over the UTF-8 bytes of `text`. */
export function crc16(text: string): number {
  let crc = 0;
  for (const byte of Buffer.from(text, 'utf8')) {
    crc = ((crc << 8) ^ (TABLE[((crc >> 8) ^ byte) & 0xff] ?? 0)) & 0xffff;
  }
  return crc;
}

/** The part of `key` that decides its slot: its hash tag if it has a non-empty one. */
export function hashTagOf(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return key;
  return key.slice(open + 1, close);
}

export function keySlot(key: string): number {
  return crc16(hashTagOf(key)) % SLOT_COUNT;
}
