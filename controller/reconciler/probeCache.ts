/**
 * Sharing the answers of outbound checks between reconciles. Many offers often point at one
 * upstream (one model server, many priced routes): a burst of reconciles must make one probe per
 * URL, not one per offer. Pure (the clock is injected), so it is unit-tested without a network.
 */

interface Entry<T> {
  readonly value: Promise<T>;
  /** When the check settled; undefined while it is in flight. */
  settledAt?: number;
}

/**
 * Per-key memo of an async check: callers that ask while a check is in flight share its promise
 * (de-duplication), and a settled answer is reused for `ttlMs` after it settled. A check that
 * rejects is not cached: the next caller starts a new one.
 */
export class ProbeCache<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private misses = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
    /** Past this many entries, expired ones are swept (keys of deleted offers do not pile up). */
    private readonly sweepAbove = 1024,
  ) {}

  /** The cached or in-flight answer for `key`, else the answer of a new `check()`. */
  get(key: string, check: () => Promise<T>): Promise<T> {
    const hit = this.entries.get(key);
    if (hit && this.fresh(hit)) return hit.value;
    this.misses++;
    if (this.entries.size >= this.sweepAbove) this.sweep();
    let entry: Entry<T>;
    const value = (async () => check())().then(
      (result) => {
        entry.settledAt = this.now();
        return result;
      },
      (err: unknown) => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
        throw err;
      },
    );
    entry = { value };
    this.entries.set(key, entry);
    return value;
  }

  /** Forgets `key`, so the next get() checks again. */
  invalidate(key: string): void {
    this.entries.delete(key);
  }

  /** How many get() calls started a new check (for tests and metrics). */
  get checks(): number {
    return this.misses;
  }

  get size(): number {
    return this.entries.size;
  }

  private fresh(entry: Entry<T>): boolean {
    return entry.settledAt === undefined || this.now() - entry.settledAt < this.ttlMs;
  }

  private sweep(): void {
    for (const [key, entry] of this.entries) if (!this.fresh(entry)) this.entries.delete(key);
  }
}
