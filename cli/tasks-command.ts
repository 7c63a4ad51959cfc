import type { ParseArgsOptionsConfig } from "node:util";
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TaskState, TaskStateSchema, type TaskStatus, TaskStatusSchema } from "../gen/taskwire/v1/task_pb.ts";
import { type ListTasksRequest, ListTasksResponseSchema } from "../gen/taskwire/v1/task_service_pb.ts";
import { stateName } from "../sdk/core/index.ts";
import { describeStatus } from "./describe-status.ts";
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
import { confirm, counted, formatFields, layoutTable } from "./terminal.ts";
import { formatAge, parseTimeFlag } from "./time-flags.ts";
import { UsageError } from "./usage-error.ts";

/** `taskwire tasks --help`. */
export const tasksUsage = `usage: taskwire tasks <command> [flags]

commands:
  list      tasks, newest first: --type T, --state running,failed, --since 1h|ISO,
            --until 1h|ISO, --key K (with --type), --field name=value (with --type),
            --limit N (default 50)
  get <id>  one task: state, attempts, times, errors, progress and result
  cancel <id>... [--reason R]
            cancel tasks (asks first at a terminal; --yes does not ask)

flags: --json (one Protobuf JSON document), --gateway, --token-file, --ca, --config`;

/** The flags of `taskwire tasks` besides the common ones. */
export const tasksOptions = {
  type: { type: "string" },
  state: { type: "string" },
  since: { type: "string" },
  until: { type: "string" },
  key: { type: "string" },
  field: { type: "string" },
  limit: { type: "string" },
  reason: { type: "string" },
} as const satisfies ParseArgsOptionsConfig;

/** The flags of `tasksOptions` each command takes. */
const flagsOfVerb: Readonly<Record<string, readonly string[]>> = {
  list: ["type", "state", "since", "until", "key", "field", "limit"],
  get: [],
  cancel: ["reason"],
};

/** The filters of `tasks list` as flags, before parsing. */
export interface TaskListFlags {
  readonly type?: string | undefined;
  readonly state?: string | undefined;
  readonly since?: string | undefined;
  readonly until?: string | undefined;
  readonly key?: string | undefined;
  readonly field?: string | undefined;
}

/** `taskwire tasks list|get|cancel`. */
export async function tasksCommand(args: string[], context: OperationContext): Promise<void> {
  const { values, positionals } = parseOperation(args, tasksOptions, tasksUsage);
  const { terminal } = context;
  if (values.help) return terminal.print(tasksUsage);
  const verb = positionals[1];
  const ids = operands(positionals);
  checkFlags(values, tasksOptions, flagsOfVerb, "tasks", verb);
  switch (verb) {
    case "list": {
      if (ids.length > 0) throw new UsageError(`tasks list takes no arguments, got "${ids.join(" ")}"`);
      const filter = taskListFilter(values, new Date());
      const limit = limitOf(values.limit, 50);
      return withGateway(context, values, async (client, target) => {
        const tasks: TaskStatus[] = [];
        let pageToken = "";
        do {
          const page = await client.listTasks({ ...filter, pageSize: Math.min(1000, limit - tasks.length), pageToken });
          tasks.push(...page.tasks);
          pageToken = page.nextPageToken;
        } while (pageToken && tasks.length < limit);
        if (values.json) {
          const response = create(ListTasksResponseSchema, { tasks, nextPageToken: pageToken });
          return printJson(terminal, ListTasksResponseSchema, response, (await target.types()).registry);
        }
        if (tasks.length === 0) return terminal.note("no tasks match");
        for (const line of taskTable(tasks, new Date(), terminal.columns)) terminal.print(line);
        if (pageToken) terminal.note(`(the first ${tasks.length}; more match: raise --limit or narrow the filters)`);
      });
    }
    case "get": {
      const [id, ...rest] = ids;
      if (id === undefined || rest.length > 0) throw new UsageError("tasks get needs one task id");
      return withGateway(context, values, async (client, target) => {
        const status = await client.getTask(id);
        const { registry } = await target.types();
        if (values.json) return printJson(terminal, TaskStatusSchema, status, registry);
        for (const line of formatFields(describeStatus(status, registry, new Date()))) terminal.print(line);
      });
    }
    case "cancel": {
      if (ids.length === 0) throw new UsageError("tasks cancel needs at least one task id");
      await confirm(
        terminal,
        values.yes,
        ids.length === 1 ? `cancel task ${ids[0]}` : `cancel ${counted(ids.length, "task")}`,
      );
      return withGateway(context, values, async (client, target) => {
        const done: TaskStatus[] = [];
        for (const id of ids) {
          try {
            done.push(await client.cancelTask(id, values.reason));
          } catch (error) {
            terminal.note(`taskwire: ${id}: ${errorText(error)}`);
          }
        }
        if (values.json) {
          const response = create(ListTasksResponseSchema, { tasks: done });
          printJson(terminal, ListTasksResponseSchema, response, (await target.types()).registry);
        } else {
          for (const status of done) terminal.print(describeCancel(status));
        }
        if (done.length < ids.length)
          throw new Error(`${ids.length - done.length} of ${counted(ids.length, "task")} not cancelled`);
      });
    }
    default:
      throw unknownVerb("tasks", verb, tasksUsage);
  }
}

/**
 * The ListTasks filters of `tasks list`'s flags; a bad value is a UsageError
 * naming the flag and what it accepts. Durations count back from `now`.
 */
export function taskListFilter(flags: TaskListFlags, now: Date): Partial<ListTasksRequest> {
  const filter: Partial<ListTasksRequest> = {};
  if (flags.type !== undefined) filter.workerType = flags.type;
  if (flags.state !== undefined) filter.states = flags.state.split(",").map((name) => stateOf(name.trim()));
  if (flags.since !== undefined) filter.since = timestampFromDate(parseTimeFlag("since", flags.since, now, "past"));
  if (flags.until !== undefined) filter.until = timestampFromDate(parseTimeFlag("until", flags.until, now, "past"));
  if ((flags.key !== undefined || flags.field !== undefined) && flags.type === undefined) {
    throw new UsageError(`--${flags.key !== undefined ? "key" : "field"} needs --type: it searches one worker type`);
  }
  if (flags.key !== undefined) filter.idempotencyKey = flags.key;
  if (flags.field !== undefined) {
    const at = flags.field.indexOf("=");
    if (at < 1) throw new UsageError(`--field must be name=value, e.g. --field title=Q3, got "${flags.field}"`);
    filter.fieldName = flags.field.slice(0, at);
    filter.fieldValue = flags.field.slice(at + 1);
  }
  return filter;
}

/** The state a --state name means ("running", "FAILED"). */
function stateOf(name: string): TaskState {
  const state = TaskStateSchema.values.find(
    (value) => value.number !== TaskState.UNSPECIFIED && value.localName === name.toUpperCase(),
  );
  if (state) return state.number as TaskState;
  const names = TaskStateSchema.values.filter((value) => value.number !== TaskState.UNSPECIFIED);
  throw new UsageError(
    `--state "${name}" is not a task state; the states: ${names.map((value) => value.localName.toLowerCase()).join(", ")}`,
  );
}

/** The table of `tasks list`: id, method, state, attempts, age, and the error or progress. */
export function taskTable(tasks: readonly TaskStatus[], now: Date, width: number): string[] {
  return layoutTable(
    [
      { header: "ID" },
      { header: "METHOD" },
      { header: "STATE" },
      { header: "ATTEMPT" },
      { header: "AGE", align: "right" },
      { header: "NOTE", shrink: true },
    ],
    tasks.map((task) => [
      task.taskId,
      task.method,
      stateName(task.state),
      `${task.attempt}/${task.maxAttempts}`,
      task.createdAt ? formatAge(now.getTime() - timestampDate(task.createdAt).getTime()) : "",
      task.error?.message ??
        (task.progress ? `${Math.round(task.progress.fraction * 100)}% ${task.progress.message}` : ""),
    ]),
    width,
  );
}

/** "cancelled <id>", or what the task had become instead. */
function describeCancel(status: TaskStatus): string {
  return status.state === TaskState.CANCELLED
    ? `cancelled ${status.taskId}`
    : `not cancelled ${status.taskId}: it had ended ${stateName(status.state)}`;
}
