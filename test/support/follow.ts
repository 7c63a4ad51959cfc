import type { ChildProcess } from "node:child_process";
import { poll } from "./poll.ts";

/** Collects a child's output and resolves `until(text)` once it has printed `text`. */
export function follow(child: ChildProcess) {
  let output = "";
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return {
    exited,
    output: () => output,
    /** Sends the child a signal (SIGTERM by default). */
    kill: (signal: NodeJS.Signals = "SIGTERM") => child.kill(signal),
    until: (text: string | RegExp, timeoutMs = 60_000) =>
      poll(async () => {
        if (child.exitCode !== null) throw new Error(`exited early:\n${output}`);
        const found = typeof text === "string" ? output.includes(text) || undefined : text.exec(output);
        return found ?? undefined;
      }, timeoutMs),
  };
}
