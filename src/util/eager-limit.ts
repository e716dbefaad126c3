/**
 * At most `concurrency` tasks at once, as p-limit, except that a task starts
 * within the call when a slot is free. p-limit starts it a microtask later:
 * after everything synchronous queued before, and a build lays out every
 * machine before its first template's m4 would start.
 */
export function eagerLimit(concurrency: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  const next = () => {
    if (active < concurrency) waiting.shift()?.();
  };
  return <T>(task: () => Promise<T>) =>
    new Promise<T>((resolve, reject) => {
      waiting.push(() => {
        active++;
        let running: Promise<T>;
        try {
          running = task();
        } catch (error) {
          running = Promise.reject(error);
        }
        running.then(resolve, reject).finally(() => {
          active--;
          next();
        });
      });
      next();
    });
}
