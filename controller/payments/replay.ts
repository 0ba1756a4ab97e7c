/**
 * Authorizations in flight or settled, until they expire: a second use of one is refused
 * locally, before the facilitator (whose verify would pass it until the first one settles).
 */
export class ReplayGuard {
  private readonly seen = new Map<string, number>();

  /**
   * Claims `key` until `until` (seconds); false when it is already claimed. Synchronous, so
   * concurrent copies of one authorization see the first claim at once.
   */
  claim(key: string | undefined, until: number, now: number): boolean {
    for (const [k, expiry] of this.seen) if (expiry < now) this.seen.delete(k);
    if (key === undefined) return true;
    if (this.seen.has(key)) return false;
    this.seen.set(key, until);
    return true;
  }

  /** Not charged: the authorization may be used again. */
  release(key: string | undefined): void {
    if (key !== undefined) this.seen.delete(key);
  }
}
