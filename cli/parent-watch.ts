/**
 * Calls `onEnded` once the process with id `parent`, this one's parent, has
 * ended: on Linux and macOS an orphan is handed to another parent (init or a
 * subreaper) at once, so its parent id changes. Polled every `intervalMs` on a
 * timer that keeps nothing alive. Returns a function that stops watching.
 *
 * npm exec (npx) and npm run start a bin through `sh -c`, and on SIGTERM pass the
 * signal to that shell alone; dash (Debian's sh) dies of it without passing it
 * on, so the command never hears it and only sees its parent end.
 */
export function whenParentEnds(parent: number, onEnded: () => void, intervalMs = 500): () => void {
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    onEnded();
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
