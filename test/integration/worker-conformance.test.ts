import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { createClient } from "../../sdk/client/create-client.ts";
import { provisionWorkerType } from "../../sdk/nats/provisioning.ts";
import { limitedProbeService, probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { startNatsServer } from "../support/nats-server.ts";
import { repoRoot } from "../support/tools.ts";
import { scenarios } from "../worker-conformance/scenarios.ts";
import {
  go,
  python,
  type RunningWorker,
  startWorker,
  typescript,
  type WorkerImplementation,
} from "../worker-conformance/workers.ts";

/** Every worker implementation, as the docs' table lists them; those not built yet have no command. */
const implementations: readonly (WorkerImplementation | { readonly language: string })[] = [typescript, python, go];
const tablePath = join(repoRoot, "docs", "worker-conformance.md");

/**
 * The worker conformance suite: the same scenarios, language-neutral, against
 * each worker implementation, each on a nats-server of its own. Its results
 * make the table of docs/worker-conformance.md: its last test fails while that
 * table says otherwise (`TASKWIRE_WRITE_CONFORMANCE=1` writes it).
 */
describe("worker conformance", () => {
  const passed = new Map<string, Set<string>>();

  for (const implementation of implementations) {
    if (!("command" in implementation)) continue;
    describe(implementation.language, () => {
      for (const scenario of scenarios) {
        it(scenario.name, async () => {
          const nats = await startNatsServer();
          // Provisioned as a deployment's gateway would, with taskwire.yaml's worker.ackWaitMs: workers
          // in other languages provision nothing, and a task of a killed worker comes back after 1 s.
          const nc = await connect({ servers: nats.url });
          const jsm = await jetstreamManager(nc);
          for (const service of [probeService, limitedProbeService])
            await provisionWorkerType(jsm, service, { ackWaitMs: 1_000 });
          await nc.close();
          const client = await createClient({ nats: nats.url, services: [probeService, limitedProbeService] });
          const workers: RunningWorker[] = [];
          try {
            await scenario.run({
              client,
              startWorker: async (env) => {
                const worker = await startWorker(implementation, nats.url, `w${workers.length}`, client, env);
                workers.push(worker);
                return worker;
              },
            });
            const done = passed.get(implementation.language) ?? new Set<string>();
            passed.set(implementation.language, done.add(scenario.name));
          } finally {
            await Promise.all(workers.map((w) => w.kill()));
            await client.close();
            await nats.stop();
          }
        }, 90_000);
      }
    });
  }

  it("the docs' table says what the suite found", async () => {
    const table = conformanceTable(passed);
    const page = await readFile(tablePath, "utf8");
    const start = page.indexOf("<!-- table:start -->");
    const end = page.indexOf("<!-- table:end -->");
    const written = page.slice(start, end + "<!-- table:end -->".length);
    const expected = `<!-- table:start -->\n${table}\n<!-- table:end -->`;
    // Only when every scenario ran: a filtered run (-t) says nothing of the others.
    if ([...passed.values()].reduce((n, s) => n + s.size, 0) < scenarios.length) return;
    if (process.env.TASKWIRE_WRITE_CONFORMANCE === "1") await writeFile(tablePath, page.replace(written, expected));
    else
      expect(cells(written), "docs/worker-conformance.md's table: run with TASKWIRE_WRITE_CONFORMANCE=1").toBe(
        cells(expected),
      );
  });
});

/** The Markdown table: a row per scenario, a column per language, ✓ where it passed. */
function conformanceTable(passed: ReadonlyMap<string, ReadonlySet<string>>): string {
  const header = `| scenario | ${implementations.map((i) => i.language).join(" | ")} |`;
  const rule = `| --- | ${implementations.map(() => "---").join(" | ")} |`;
  const rows = scenarios.map(
    (s) =>
      `| ${s.name} | ${implementations
        .map((i) => ("command" in i ? (passed.get(i.language)?.has(s.name) ? "✓" : "✗") : "not yet"))
        .join(" | ")} |`,
  );
  return [header, rule, ...rows].join("\n");
}

/** A Markdown table's cells, whatever the padding a formatter gave its columns. */
function cells(table: string): string {
  return table
    .split("\n")
    .map((line) =>
      line
        .split("|")
        .map((cell) => cell.trim().replace(/^-+:?$/, "---"))
        .join("|"),
    )
    .join("\n");
}
