import type { ParseArgsOptionsConfig } from "node:util";
import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  type DeadLetter,
  GetDeadLetterResponseSchema,
  ListDeadLettersResponseSchema,
  PurgeDeadLettersResponseSchema,
} from "../gen/taskwire/v1/queue_service_pb.ts";
import type { TaskStatus } from "../gen/taskwire/v1/task_pb.ts";
import { ListTasksResponseSchema } from "../gen/taskwire/v1/task_service_pb.ts";
import type { TaskwireClient } from "../sdk/client/index.ts";
import { stateName } from "../sdk/core/index.ts";
import { describeStatus, describeTime, messageJson } from "./describe-status.ts";
import {
  checkFlags,
  errorText,
  limitOf,
  type OperationContext,
  operands,
  parseOperation,
  printJson,
  unknownVerb,
  withGateway,
} from "./operation.ts";
import { confirm, counted, formatFields, layoutTable, type Terminal } from "./terminal.ts";
import { formatAge } from "./time-flags.ts";
import { UsageError } from "./usage-error.ts";

/** `taskwire dlq --help`. */
export const dlqUsage = `usage: taskwire dlq <command> [flags]

commands:
  list <type> [--limit N]  the type's dead letters (tasks that failed for good), oldest
                           first (default --limit 50)
  show <id>                one dead letter: its final error, error history and payload
  retry <id>...            queue dead-lettered tasks again under their ids, with fresh
                           attempts
  retry <type> --all       queue every dead letter of the type again
  purge <type> [<id>...]   remove the type's dead letters, or only the listed ones (the
                           tasks stay FAILED)

Retrying several, and purging, ask first at a terminal; --yes does not ask.

flags: --json (one Protobuf JSON document), --gateway, --token-file, --ca, --config`;

/** The flags of `taskwire dlq` besides the common ones. */
export const dlqOptions = {
  limit: { type: "string" },
  all: { type: "boolean", default: false },
} as const satisfies ParseArgsOptionsConfig;

/** The flags of `dlqOptions` each command takes. */
const flagsOfVerb: Readonly<Record<string, readonly string[]>> = {
  list: ["limit"],
  show: [],
  retry: ["all"],
  purge: [],
};

/** `taskwire dlq list|show|retry|purge`. */
export async function dlqCommand(args: string[], context: OperationContext): Promise<void> {
  const { values, positionals } = parseOperation(args, dlqOptions, dlqUsage);
  const { terminal } = context;
  if (values.help) return terminal.print(dlqUsage);
  const verb = positionals[1];
  const rest = operands(positionals);
  checkFlags(values, dlqOptions, flagsOfVerb, "dlq", verb);
  switch (verb) {
    case "list": {
      const [type, ...extra] = rest;
      if (type === undefined || extra.length > 0) throw new UsageError("dlq list needs one worker type");
      const limit = limitOf(values.limit, 50);
      return withGateway(context, values, async (client, target) => {
        const { deadLetters, nextPageToken } = await deadLettersOf(client, type, limit);
        if (values.json) {
          const response = create(ListDeadLettersResponseSchema, { deadLetters, nextPageToken });
          return printJson(terminal, ListDeadLettersResponseSchema, response, (await target.types()).registry);
        }
        if (deadLetters.length === 0) return terminal.note(`no dead letters of ${type}`);
        for (const line of deadLetterTable(deadLetters, new Date(), terminal.columns)) terminal.print(line);
        if (nextPageToken) terminal.note(`(the first ${deadLetters.length}; there are more: raise --limit)`);
      });
    }
    case "show": {
      const [id, ...extra] = rest;
      if (id === undefined || extra.length > 0) throw new UsageError("dlq show needs one task id");
      return withGateway(context, values, async (client, target) => {
        const deadLetter = await client.queues.getDeadLetter(id);
        const { registry } = await target.types();
        if (values.json) {
          const response = create(GetDeadLetterResponseSchema, { deadLetter });
          return printJson(terminal, GetDeadLetterResponseSchema, response, registry);
        }
        const now = new Date();
        const item = deadLetter.workItem;
        const fields = [
          ...(deadLetter.status ? describeStatus(deadLetter.status, registry, now) : [["task", id] as const]),
          ["dead", deadLetter.deadAt && describeTime(deadLetter.deadAt, now)] as const,
          ["payload", item && messageJson(item.payloadType, item.payload, registry)] as const,
        ];
        for (const line of formatFields(fields)) terminal.print(line);
      });
    }
    case "retry": {
      const retry = retryOperands(rest, values.all);
      return withGateway(context, values, async (client, target) => {
        const ids = "ids" in retry ? retry.ids : await deadLetterIds(client, retry.type);
        if ("type" in retry) {
          if (ids.length === 0) return terminal.note(`no dead letters of ${retry.type}`);
          await confirm(terminal, values.yes, `retry ${counted(ids.length, "dead letter")} of ${retry.type}`);
        } else if (ids.length > 1) {
          await confirm(terminal, values.yes, `retry ${counted(ids.length, "dead letter")}`);
        }
        const retried = await retryEach(client, ids, terminal);
        if (values.json) {
          const response = create(ListTasksResponseSchema, { tasks: retried });
          printJson(terminal, ListTasksResponseSchema, response, (await target.types()).registry);
        } else {
          for (const status of retried) terminal.print(`retried ${status.taskId}: ${stateName(status.state)}`);
        }
        if (retried.length < ids.length) throw new Error(`${ids.length - retried.length} of ${ids.length} not retried`);
      });
    }
    case "purge": {
      const [type, ...ids] = rest;
      if (type === undefined) throw new UsageError("dlq purge needs a worker type, and optionally task ids");
      return withGateway(context, values, async (client) => {
        const count = ids.length || Number((await client.queues.getQueue(type)).deadLetters);
        await confirm(terminal, values.yes, `purge ${counted(count, "dead letter")} of ${type}`);
        const purged = await client.queues.purgeDeadLetters(type, ids);
        if (values.json) {
          const response = create(PurgeDeadLettersResponseSchema, { purged: BigInt(purged) });
          return printJson(terminal, PurgeDeadLettersResponseSchema, response);
        }
        terminal.print(`purged ${counted(purged, "dead letter")} of ${type}`);
      });
    }
    default:
      throw unknownVerb("dlq", verb, dlqUsage);
  }
}

/** Up to `limit` dead letters of the type, a page at a time; the token is the next page's, if more remain. */
async function deadLettersOf(client: TaskwireClient, type: string, limit: number) {
  const deadLetters: DeadLetter[] = [];
  let nextPageToken = "";
  do {
    const pageSize = Math.min(1000, limit - deadLetters.length);
    const page = await client.queues.listDeadLetters(type, { pageSize, pageToken: nextPageToken });
    deadLetters.push(...page.deadLetters);
    nextPageToken = page.nextPageToken;
  } while (nextPageToken && deadLetters.length < limit);
  return { deadLetters, nextPageToken };
}

/** What `dlq retry` acts on: the task ids given, or with --all the one worker type given. */
function retryOperands(operands: string[], all: boolean): { ids: string[] } | { type: string } {
  if (all) {
    const [type, ...extra] = operands;
    if (type === undefined || extra.length > 0) {
      throw new UsageError("dlq retry --all needs one worker type, e.g. dlq retry hasher --all");
    }
    return { type };
  }
  if (operands.length === 0) throw new UsageError("dlq retry needs task ids, or a worker type and --all");
  const type = operands.find((operand) => !operand.includes("."));
  if (type !== undefined) {
    throw new UsageError(`"${type}" is a worker type, not a task id: retry all its dead letters with --all`);
  }
  return { ids: operands };
}

/** The ids of every dead letter of the type. */
async function deadLetterIds(client: TaskwireClient, type: string): Promise<string[]> {
  const { deadLetters } = await deadLettersOf(client, type, Number.POSITIVE_INFINITY);
  return deadLetters.map((deadLetter) => deadLetter.status?.taskId ?? deadLetter.workItem?.taskId ?? "");
}

/** Retries each dead letter; says which could not be, and goes on. */
async function retryEach(client: TaskwireClient, ids: string[], terminal: Terminal): Promise<TaskStatus[]> {
  const retried: TaskStatus[] = [];
  for (const id of ids) {
    try {
      retried.push(await client.queues.retryDeadLetter(id));
    } catch (error) {
      terminal.note(`taskwire: ${id}: ${errorText(error)}`);
    }
  }
  return retried;
}

/** The table of `dlq list`: id, method, attempts, how long ago it died, and its error. */
export function deadLetterTable(deadLetters: readonly DeadLetter[], now: Date, width: number): string[] {
  return layoutTable(
    [
      { header: "ID" },
      { header: "METHOD" },
      { header: "ATTEMPT" },
      { header: "DEAD", align: "right" },
      { header: "ERROR", shrink: true },
    ],
    deadLetters.map(({ status, workItem, deadAt }) => [
      status?.taskId ?? workItem?.taskId ?? "",
      status?.method ?? workItem?.method ?? "",
      status ? `${status.attempt}/${status.maxAttempts}` : "",
      deadAt ? formatAge(now.getTime() - timestampDate(deadAt).getTime()) : "",
      status?.error?.message ?? "",
    ]),
    width,
  );
}
