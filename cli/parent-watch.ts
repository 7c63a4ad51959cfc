import { type ChildProcess, spawn } from "node:child_process";
import type { Socket } from "node:net";

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

/**
 * Makes `child` end with this process, however this one ends, SIGKILL included:
 * a shell of its own session holds the read end of a pipe whose only writer is
 * this process, and SIGTERMs the child when the pipe closes. Once the child has
 * exited, the shell is stopped (its pid might be another process's by then).
 * For children that run in a process group of their own (nats-server), which
 * nothing else stops when this process dies. Not on Windows (no sh).
 */
export function stopWithThisProcess(child: ChildProcess): void {
  if (process.platform === "win32" || child.pid === undefined || child.exitCode !== null) return;
  const guard = spawn("sh", ["-c", 'read _; kill -TERM "$1" 2>/dev/null', "taskwire-guard", String(child.pid)], {
    stdio: ["pipe", "ignore", "ignore"],
    // Its own session: a terminal's Ctrl-C or hang-up does not end it before the child.
    detached: true,
  });
  guard.on("error", () => undefined); // no sh: the child is then as before, stopped by this process only
  guard.stdin?.on("error", () => undefined);
  guard.unref();
  (guard.stdin as Socket | null)?.unref();
  child.once("exit", () => guard.kill());
}
