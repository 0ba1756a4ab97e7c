/**
 * Runs `pass` now and then `intervalMs` after each pass ends (never two at once); the timer does
 * not keep the process alive. Returns the function that stops it. A pass handles its own errors.
 */
export function repeatEvery(intervalMs: number, pass: () => Promise<unknown>): () => void {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const tick = () => {
    void pass().finally(() => {
      if (stopped) return;
      timer = setTimeout(tick, intervalMs);
      timer.unref();
    });
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
