/**
 * `npm run bench [-- --quick] [--cpu-prof-dir DIR] [--only ID,ID] [--rounds N]`: measures the
 * raw JetStream limit, Taskwire (direct and through the gateway) and BullMQ in one run, in
 * rounds, prints one table (each system's median round), writes docs/benchmarks.md, and
 * prints the ratios (medians of the ratios within each round) on the last line.
 */
import { writeFile } from "node:fs/promises";
import { throughputChart } from "./chart.ts";
import { compileBench } from "./compile.ts";
import { benchmarksPath, chartPath, currentSection, sectionNames } from "./doc-section.ts";
import { executeRun, type RunOutcome } from "./execute-run.ts";
import { describeMachine } from "./machine.ts";
import { parseOptions } from "./options.ts";
import { ensureRedisServer } from "./redis-server.ts";
import { benchmarksDoc, driftLine, medianOutcomes, ratioLine, ratioSystems, resultTable } from "./report.ts";
import { runs } from "./runs.ts";

const args = process.argv.slice(2);
const options = parseOptions(args);
const command = ["npm run bench", ...(args.length > 0 ? ["--", ...args] : [])].join(" ");
ensureRedisServer();
compileBench();
const machine = describeMachine();

const selected = runs.filter((run) => options.only.length === 0 || options.only.includes(run.id));
if (selected.length === 0) throw new Error(`--only names no run; the runs are ${runs.map((r) => r.id).join(", ")}`);
// The machine's speed drifts (other tenants, thermal limits). The systems the ratios
// compare run twice a round, in mirrored order around the others (A B C ... C B A), so a
// steady slowdown during the round weighs on each of them alike; the others rotate from
// round to round, for the same share of good and bad moments.
const paired = selected.filter((run) => ratioSystems.includes(run.id));
const others = selected.filter((run) => !ratioSystems.includes(run.id));
const rounds: RunOutcome[][] = [];
for (let round = 0; round < options.rounds; round++) {
  const shift = others.length > 0 ? round % others.length : 0;
  const order = [...paired, ...others.slice(shift), ...others.slice(0, shift), ...paired.toReversed()];
  const outcomes: RunOutcome[] = [];
  for (const [i, run] of order.entries()) {
    console.error(`bench: round ${round + 1}/${options.rounds} [${i + 1}/${order.length}] ${run.label}...`);
    const start = performance.now();
    const outcome = await executeRun(run, options);
    const took = `${((performance.now() - start) / 1000).toFixed(1)} s`;
    console.error(
      "error" in outcome
        ? `bench:   failed after ${took}: ${outcome.error}`
        : `bench:   ${outcome.result.endToEndPerSec.toFixed(0)} tasks/s end to end, ${outcome.result.tasks} tasks (${took})`,
    );
    outcomes.push(outcome);
  }
  rounds.push(outcomes);
}
const outcomes = medianOutcomes(selected, rounds);

// A partial run (--only) leaves the page of the last whole run alone.
const written = options.only.length === 0;
if (written) {
  // The scaling sections belong to `npm run bench:scale`, `bench:delayed` and `bench:bulk`: kept as they are.
  const kept = (await Promise.all(sectionNames.map(currentSection))).filter((section) => section);
  const page = benchmarksDoc(outcomes, rounds, machine, options, command);
  await writeFile(benchmarksPath, `${[page.trimEnd(), ...kept].join("\n\n")}\n`);
  const title = `End-to-end throughput, median of ${options.rounds} round(s), ${machine.cpus} CPUs (npm run bench, ${machine.date.slice(0, 10)})`;
  await writeFile(chartPath, throughputChart(outcomes, title));
}
console.log(resultTable(outcomes));
console.log(
  `(${machine.cpus} CPUs, Node ${machine.node}, ${options.mode} mode; docs/benchmarks.md ${written ? "written" : "not written: --only"})`,
);
const drift = driftLine(rounds);
if (drift) console.log(drift);
console.log(ratioLine(rounds)); // the last line: the ratios that matter
process.exitCode = rounds.flat().some((o) => "error" in o) ? 1 : 0;
