// How times and durations show.

/** A duration in milliseconds as `1h 02m`, `3m 05s` or `12s`. */
export function duration(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  const [h, m, s] = [Math.floor(seconds / 3600), Math.floor((seconds % 3600) / 60), seconds % 60];
  if (h > 0) return `${h}h ${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m ${String(s).padStart(2, "0")}s`;
  return `${s}s`;
}

/** A moment (milliseconds since the epoch) as the local time of day. */
export function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString();
}
