// Seeded random numbers for the fault suite (mulberry32): a plain LCG's draws a fixed distance apart are
// correlated, which made every trial pick the same signal. One stream for the model, one for the kills.
export function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
