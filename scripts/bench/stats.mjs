// How the benches turn rounds into figures. Rounds alternate (proxy, floor, …), so round i of
// one ran next to round i of the other, under the same machine conditions. A ratio is the
// median of the rounds' own ratios; each side's reported figure is its median round. The best
// round of each side (the earlier rule) let one lucky round of either side decide a target:
// a floor round at 75k req/s against its usual 40–46k turned 0.9× into 0.6×.

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** The round with the median throughput. */
export function medianRound(samples) {
  const s = [...samples].sort((a, b) => a.rps - b.rps);
  return s[Math.floor(s.length / 2)];
}

/** Median over rounds of a's throughput / b's, round by round. */
export function pairedRatio(a, b) {
  return median(a.map((x, i) => x.rps / b[i].rps));
}
