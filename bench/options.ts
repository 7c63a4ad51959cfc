import { parseArgs } from "node:util";

/** How much `npm run bench` measures. */
export interface BenchOptions {
  /** "quick" (`--quick`, under a minute) or "full". */
  readonly mode: "quick" | "full";
  /** How long the throughput phase of each system submits (its tasks then finish). */
  readonly throughputMs: number;
  /** How long each system runs tasks before anything is measured, so that the JIT has compiled its hot path. */
  readonly warmupMs: number;
  /** Tasks whose submit may be unacknowledged at once. */
  readonly inFlight: number;
  /** Tasks whose result the client may be waiting for at once. */
  readonly observers: number;
  /** Tasks per BatchSubmit or addBulk call. */
  readonly batchSize: number;
  /** Submits per second of the latency phase, open loop. */
  readonly latencyRate: number;
  /** Duration of the latency phase. */
  readonly latencyMs: number;
  /** A phase fails when no task finishes for this long while some are unfinished. */
  readonly stallMs: number;
  /** The longest one system may take, start to stop. */
  readonly runTimeoutMs: number;
  /** When set, every child process writes a V8 CPU profile under this directory. */
  readonly cpuProfDir: string | undefined;
  /** Run ids to run (`--only raw,direct`); all when empty. */
  readonly only: readonly string[];
  /**
   * Rounds of every run (`--rounds N`): each round runs them all, in a rotated order,
   * and ratios are taken within a round. 3 in full mode, 1 in quick mode.
   */
  readonly rounds: number;
}

/** Parses the command line of `npm run bench`: `--quick`, `--cpu-prof-dir DIR`, `--only ID,ID`, `--rounds N`. */
export function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      "cpu-prof-dir": { type: "string" },
      only: { type: "string", default: "" },
      rounds: { type: "string" },
    },
  });
  const quick = values.quick === true;
  const rounds = values.rounds === undefined ? (quick ? 1 : 3) : Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1)
    throw new Error(`--rounds must be a positive integer, got ${values.rounds}`);
  return {
    mode: quick ? "quick" : "full",
    throughputMs: quick ? 500 : 3_000,
    warmupMs: quick ? 200 : 3_000,
    inFlight: 1_000,
    observers: 1_000,
    batchSize: 100,
    latencyRate: 200,
    latencyMs: quick ? 1_000 : 10_000,
    stallMs: quick ? 5_000 : 10_000,
    runTimeoutMs: quick ? 60_000 : 600_000,
    cpuProfDir: values["cpu-prof-dir"],
    only: (values.only ?? "").split(",").filter((id) => id !== ""),
    rounds,
  };
}

/**
 * The task counts a scaling script (`bench:scale`, `bench:delayed`, `bench:bulk`) was
 * given on its command line, else its defaults. Each must be an integer of at least 10.
 */
export function taskCounts(defaults: number[]): number[] {
  const given = process.argv.slice(2).map(Number);
  const counts = given.length > 0 ? given : defaults;
  for (const tasks of counts) {
    if (!Number.isInteger(tasks) || tasks < 10)
      throw new Error(`a size must be an integer of at least 10, got ${tasks}`);
  }
  return counts;
}
