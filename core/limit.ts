/**
 * Work over many items, a bounded number at a time: what a registry does per tag or per blob against
 * storage whose every call is a round trip (S3), where one after the other costs the sum of the trips.
 */

/**
 * Calls `fn` for each of `items`, at most `limit` at once, started in order of the items, and resolves
 * with the results in that order. On the first failure no further item is started, and once the calls
 * under way have settled it rejects with that failure.
 */
export async function mapLimit<T, R>(items: Iterable<T>, limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const it = items[Symbol.iterator]();
  const results: R[] = [];
  let next = 0;
  let failed: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (!failed) {
      const n = it.next();
      if (n.done) return;
      const i = next++;
      try {
        results[i] = await fn(n.value);
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.floor(limit)) }, worker));
  if (failed) throw failed.error;
  return results;
}

/** `mapLimit` for calls whose results are not needed. */
export async function forEachLimit<T>(items: Iterable<T>, limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  await mapLimit(items, limit, fn);
}
