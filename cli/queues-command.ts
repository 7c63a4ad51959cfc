import type { ParseArgsOptionsConfig } from "node:util";
import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  ListQueuesResponseSchema,
  PauseQueueResponseSchema,
  PurgeQueueResponseSchema,
  type QueueInfo,
  ResumeQueueResponseSchema,
} from "../gen/taskwire/v1/queue_service_pb.ts";
import { describeTime } from "./describe-status.ts";
import {
  checkFlags,
  type OperationContext,
  operands,
  parseOperation,
  printJson,
  unknownVerb,
  withGateway,
} from "./operation.ts";
import { confirm, counted, layoutTable } from "./terminal.ts";
import { formatAge, parseTimeFlag } from "./time-flags.ts";
import { UsageError } from "./usage-error.ts";

/** `taskwire queues --help`. */
export const queuesUsage = `usage: taskwire queues <command> [flags]

commands:
  list                       every worker type's queue: queued, scheduled, running, dead
                             letters, paused, the oldest waiting task's age, live workers
  pause <type> [--until T]   workers of the type start no task until resumed, or until T
                             (a duration from now such as 30m, or an ISO 8601 time)
  resume <type>              workers of the type start tasks again
  purge <type> [--reason R]  cancel every unfinished task of the type (asks first at a
                             terminal; --yes does not ask)

flags: --json (one Protobuf JSON document), --gateway, --token-file, --ca, --config`;

/** The flags of `taskwire queues` besides the common ones. */
export const queuesOptions = {
  until: { type: "string" },
  reason: { type: "string" },
} as const satisfies ParseArgsOptionsConfig;

/** The flags of `queuesOptions` each command takes. */
const flagsOfVerb: Readonly<Record<string, readonly string[]>> = {
  list: [],
  pause: ["until"],
  resume: [],
  purge: ["reason"],
};

/** `taskwire queues list|pause|resume|purge`. */
export async function queuesCommand(args: string[], context: OperationContext): Promise<void> {
  const { values, positionals } = parseOperation(args, queuesOptions, queuesUsage);
  const { terminal } = context;
  if (values.help) return terminal.print(queuesUsage);
  const verb = positionals[1];
  const rest = operands(positionals);
  checkFlags(values, queuesOptions, flagsOfVerb, "queues", verb);
  if (verb === "list") {
    if (rest.length > 0) throw new UsageError(`queues list takes no arguments, got "${rest.join(" ")}"`);
    return withGateway(context, values, async (client) => {
      const queues = await client.queues.listQueues();
      if (values.json)
        return printJson(terminal, ListQueuesResponseSchema, create(ListQueuesResponseSchema, { queues }));
      if (queues.length === 0) return terminal.note("no worker types");
      for (const line of queueTable(queues, new Date(), terminal.columns)) terminal.print(line);
    });
  }
  if (verb !== "pause" && verb !== "resume" && verb !== "purge") throw unknownVerb("queues", verb, queuesUsage);
  const [type, ...extra] = rest;
  if (type === undefined || extra.length > 0) throw new UsageError(`queues ${verb} needs one worker type`);
  const until = values.until === undefined ? undefined : parseTimeFlag("until", values.until, new Date(), "future");
  return withGateway(context, values, async (client) => {
    switch (verb) {
      case "pause": {
        const queue = await client.queues.pauseQueue(type, until);
        if (values.json)
          return printJson(terminal, PauseQueueResponseSchema, create(PauseQueueResponseSchema, { queue }));
        const when = queue.pausedUntil ? describeTime(queue.pausedUntil, new Date()) : "resumed";
        return terminal.print(`paused ${type} until ${when}`);
      }
      case "resume": {
        const queue = await client.queues.resumeQueue(type);
        if (values.json)
          return printJson(terminal, ResumeQueueResponseSchema, create(ResumeQueueResponseSchema, { queue }));
        return terminal.print(`resumed ${type}: ${queue.queued} queued`);
      }
      case "purge": {
        const queue = await client.queues.getQueue(type);
        const unfinished = queue.queued + queue.scheduled + queue.running;
        await confirm(
          terminal,
          values.yes,
          `purge ${counted(unfinished, "unfinished task")} of ${type} (${queue.queued} queued, ${queue.scheduled} scheduled, ${queue.running} running)`,
        );
        const purged = await client.queues.purgeQueue(type, values.reason);
        if (values.json) {
          return printJson(
            terminal,
            PurgeQueueResponseSchema,
            create(PurgeQueueResponseSchema, { purged: BigInt(purged) }),
          );
        }
        return terminal.print(`purged ${type}: ${counted(purged, "task")} cancelled`);
      }
    }
  });
}

/** The table of `queues list`: one row per worker type. */
export function queueTable(queues: readonly QueueInfo[], now: Date, width: number): string[] {
  const ago = (at: Date) => formatAge(now.getTime() - at.getTime());
  return layoutTable(
    [
      { header: "TYPE" },
      { header: "QUEUED", align: "right" },
      { header: "SCHEDULED", align: "right" },
      { header: "RUNNING", align: "right" },
      { header: "DEAD", align: "right" },
      { header: "PAUSED" },
      { header: "OLDEST", align: "right" },
      { header: "WORKERS", align: "right" },
    ],
    queues.map((queue) => [
      queue.workerType,
      String(queue.queued),
      String(queue.scheduled),
      String(queue.running),
      String(queue.deadLetters),
      !queue.paused
        ? "no"
        : queue.pausedUntil
          ? `for ${formatAge(timestampDate(queue.pausedUntil).getTime() - now.getTime())}`
          : "yes",
      queue.oldestQueuedAt ? ago(timestampDate(queue.oldestQueuedAt)) : "-",
      String(queue.workers),
    ]),
    width,
  );
}
