import { readdir, readFile } from "node:fs/promises";

/** The id of a running process whose arguments include every one of `args` (Linux' /proc). */
export async function processWithArgs(...args: string[]): Promise<number> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const own = (await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "")).split("\0");
    if (args.every((arg) => own.includes(arg))) return Number(entry);
  }
  throw new Error(`no running process has the arguments ${args.join(" ")}`);
}

/** A running process's environment variable, as it was started with it. */
export async function environmentVariable(pid: number, name: string): Promise<string | undefined> {
  const environment = (await readFile(`/proc/${pid}/environ`, "utf8")).split("\0");
  return environment.find((entry) => entry.startsWith(`${name}=`))?.slice(name.length + 1);
}
