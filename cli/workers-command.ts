import type { ParseArgsOptionsConfig } from "node:util";
import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ListWorkersResponseSchema, type WorkerInstance } from "../gen/taskwire/v1/worker_service_pb.ts";
import { type OperationContext, parseOperation, printJson, withGateway } from "./operation.ts";
import { layoutTable } from "./terminal.ts";
import { formatAge } from "./time-flags.ts";
import { UsageError } from "./usage-error.ts";

/** `taskwire workers --help`. */
export const workersUsage = `usage: taskwire workers [--type T] [flags]

The live worker instances (serving type T, or all): id, host, pid, each worker
type with its running tasks and concurrency, when it last reported, its runtime.

flags: --json (one Protobuf JSON document), --gateway, --token-file, --ca, --config`;

/** The flags of `taskwire workers` besides the common ones. */
export const workersOptions = {
  type: { type: "string" },
} as const satisfies ParseArgsOptionsConfig;

/** `taskwire workers [--type T]`. */
export async function workersCommand(args: string[], context: OperationContext): Promise<void> {
  const { values, positionals } = parseOperation(args, workersOptions, workersUsage);
  const { terminal } = context;
  if (values.help) return terminal.print(workersUsage);
  const extra = positionals.slice(1);
  if (extra.length > 0)
    throw new UsageError(`workers takes no arguments (--type T names a type), got "${extra.join(" ")}"`);
  return withGateway(context, values, async (client) => {
    const workers = await client.queues.listWorkers(values.type);
    if (values.json)
      return printJson(terminal, ListWorkersResponseSchema, create(ListWorkersResponseSchema, { workers }));
    if (workers.length === 0) return terminal.note(`no live workers${values.type ? ` of ${values.type}` : ""}`);
    for (const line of workerTable(workers, new Date(), terminal.columns)) terminal.print(line);
  });
}

/** The table of `workers`: one row per instance, its types as "hasher 2/8" (running/concurrency). */
export function workerTable(workers: readonly WorkerInstance[], now: Date, width: number): string[] {
  return layoutTable(
    [
      { header: "WORKER" },
      { header: "HOST", shrink: true },
      { header: "PID", align: "right" },
      { header: "TYPES", shrink: true },
      { header: "HEARTBEAT", align: "right" },
      { header: "RUNTIME", shrink: true },
    ],
    workers.map((worker) => [
      worker.workerId,
      worker.host,
      String(worker.pid),
      worker.types.map((load) => `${load.workerType} ${load.running}/${load.concurrency}`).join(", "),
      worker.heartbeatAt ? `${formatAge(now.getTime() - timestampDate(worker.heartbeatAt).getTime())} ago` : "",
      worker.runtime,
    ]),
    width,
  );
}
