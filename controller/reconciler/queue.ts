/**
 * A small work queue: each key is processed by at most one worker at a time, duplicates
 * collapse, and keys can be scheduled for later (requeue with backoff instead of hot loops).
 */
export type Processor = (key: string) => Promise<void>;

export class WorkQueue {
  private readonly ready: string[] = [];
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private running = 0;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly process: Processor,
    private readonly concurrency = 2,
  ) {}

  /** Queues `key` now, or after `delayMs` (an earlier schedule for the same key wins). */
  add(key: string, delayMs = 0): void {
    if (this.stopped) return;
    if (delayMs > 0) {
      const at = Date.now() + delayMs;
      const existing = this.timers.get(key);
      if (existing && existing.at <= at) return;
      if (existing) clearTimeout(existing.timer);
      const timer = setTimeout(() => {
        this.timers.delete(key);
        this.add(key);
      }, delayMs);
      timer.unref();
      this.timers.set(key, { at, timer });
      return;
    }
    const scheduled = this.timers.get(key);
    if (scheduled) {
      clearTimeout(scheduled.timer);
      this.timers.delete(key);
    }
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.ready.push(key);
    this.pump();
  }

  /** Stops taking work and waits for running items to finish. */
  async shutdown(): Promise<void> {
    this.stopped = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.ready.length = 0;
    this.queued.clear();
    if (this.running === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (!this.stopped && this.running < this.concurrency && this.ready.length > 0) {
      const key = this.ready.shift()!;
      this.queued.delete(key);
      this.active.add(key);
      this.running++;
      this.process(key)
        .catch(() => undefined)
        .finally(() => {
          this.running--;
          this.active.delete(key);
          if (this.dirty.delete(key)) this.add(key);
          if (this.running === 0 && (this.stopped || this.ready.length === 0)) {
            for (const w of this.idleWaiters.splice(0)) w();
          }
          this.pump();
        });
    }
  }
}

/** Per-key exponential backoff: base, 2×base, 4×base … capped at max; reset on success. */
export class Backoff {
  private readonly failures = new Map<string, number>();

  constructor(
    private readonly baseMs: number,
    private readonly maxMs: number,
  ) {}

  next(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    return Math.min(this.baseMs * 2 ** n, this.maxMs);
  }

  reset(key: string): void {
    this.failures.delete(key);
  }
}
