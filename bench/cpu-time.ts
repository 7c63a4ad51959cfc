import { readFile } from "node:fs/promises";

/**
 * The CPU time a process has used so far (user and system), in microseconds:
 * fields 14 and 15 of /proc/<pid>/stat, in clock ticks of 10 ms (Linux's
 * USER_HZ is 100 wherever /proc reports it).
 */
export async function cpuMicros(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) is in parentheses and may hold spaces: count from after it.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  if (!Number.isFinite(ticks)) throw new Error(`no CPU times in /proc/${pid}/stat`);
  return ticks * 10_000;
}
