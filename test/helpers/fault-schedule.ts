// Reproducible fault schedules: a seeded PRNG and the seed a scenario runs with.

/** mulberry32: a tiny seeded PRNG, so a fault schedule is reproducible from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FSALE_FAULT_SEED when set (to replay a failure), else a fresh one; printed either way. */
export function faultSeed(scenario: string): number {
  const given = process.env.FSALE_FAULT_SEED;
  const seed = given !== undefined ? Number(given) : Math.floor(Math.random() * 2 ** 31);
  console.log(`${scenario}: fault schedule seed ${seed} (replay with FSALE_FAULT_SEED=${seed})`);
  return seed;
}
