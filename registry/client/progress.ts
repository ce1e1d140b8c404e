/** Progress throttling: byte counts arrive per network chunk; listeners get at most ~10 updates a second. */

/** Wraps `fn(completed)`; calls through at most every `ms`, always when `force` is set (start, end). */
export function throttled(fn: (completed: number) => void, ms = 100): (completed: number, force?: boolean) => void {
  let last = -Infinity;
  let lastValue = -1;
  return (completed, force = false) => {
    const now = Date.now();
    if (!force && now - last < ms) return;
    if (completed === lastValue && !force) return;
    if (force && completed === lastValue) return;
    last = now;
    lastValue = completed;
    fn(completed);
  };
}
