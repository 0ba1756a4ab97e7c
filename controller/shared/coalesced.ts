/**
 * Runs a job per key so that every request is followed by a run that starts after it, with at
 * most one run per key at a time. Requests made while a run is in flight coalesce into one more
 * run. Status writers need this: two PATCHes sent concurrently can reach the API server in either
 * order, and the older one arriving last leaves a stale status that nothing corrects.
 */
export class CoalescedRuns<K> {
  private readonly running = new Map<K, { again: boolean; done: Promise<void> }>();

  /** `run` must read its input when it starts (not when requested): that is what makes the last run current. */
  constructor(private readonly run: (key: K) => Promise<void>) {}

  /** Asks for a run of `key`; resolves after a run that started after this call has finished. */
  request(key: K): Promise<void> {
    const current = this.running.get(key);
    if (current) {
      current.again = true;
      return current.done;
    }
    const entry = { again: false, done: Promise.resolve() };
    this.running.set(key, entry);
    entry.done = (async () => {
      try {
        do {
          entry.again = false;
          await this.run(key);
        } while (entry.again);
      } finally {
        this.running.delete(key);
      }
    })();
    return entry.done;
  }
}
