import type { ParseArgsOptionsConfig } from "node:util";
import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { anyPack, durationFromMs, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  GetScheduleResponseSchema,
  ListSchedulesResponseSchema,
  PreviewScheduleResponseSchema,
  type Schedule,
  type ScheduleInfo,
  ScheduleSchema,
  TriggerScheduleResponseSchema,
} from "../gen/taskwire/v1/schedule_service_pb.ts";
import { OverlapPolicy, type ScheduleSpec, ScheduleSpecSchema } from "../gen/taskwire/v1/task_pb.ts";
import type { ClientTarget } from "./commands.ts";
import {
  checkFlags,
  type OperationContext,
  operands,
  parseOperation,
  printJson,
  unknownVerb,
  withGateway,
} from "./operation.ts";
import { confirm, layoutTable } from "./terminal.ts";
import { parseDuration, parseTimeFlag } from "./time-flags.ts";
import { UsageError } from "./usage-error.ts";

/** `taskwire schedules --help`. */
export const schedulesUsage = `usage: taskwire schedules <command> [flags]

commands:
  list [--type T]                every schedule: when it fires, its next and last time,
                                 times fired and skipped, paused
  show <type>/<id>               one schedule, whole (JSON)
  create <type>/<id> --method M (--cron EXPR [--tz ZONE] | --every D)
         [--payload JSON] [--overlap skip|buffer_one|allow_all] [--catchup D]
         [--jitter D] [--start T] [--end T] [--description TEXT] [--upsert]
                                 a schedule submitting <type>/<M> with the payload at each
                                 time; --upsert replaces one of the same id
  pause <type>/<id> [--note N]   it fires no more until resumed
  resume <type>/<id>             it fires again, from its next time after now
  trigger <type>/<id>            submit its task now; prints the task id
  preview (<type>/<id> | --cron EXPR [--tz ZONE] | --every D) [--count N]
                                 its next times (5, or N up to 100)
  delete <type>/<id>             it fires no more (asks first at a terminal; --yes does not)

D is a duration (90s, 15m, 2h, 1d); T a duration from now or an ISO 8601 time.
flags: --json (one Protobuf JSON document), --gateway, --token-file, --ca, --config`;

/** The flags of `taskwire schedules` besides the common ones. */
export const schedulesOptions = {
  type: { type: "string" },
  method: { type: "string" },
  cron: { type: "string" },
  tz: { type: "string" },
  every: { type: "string" },
  payload: { type: "string" },
  overlap: { type: "string" },
  catchup: { type: "string" },
  jitter: { type: "string" },
  start: { type: "string" },
  end: { type: "string" },
  description: { type: "string" },
  upsert: { type: "boolean", default: false },
  note: { type: "string" },
  count: { type: "string" },
} as const satisfies ParseArgsOptionsConfig;

const specFlags = ["cron", "tz", "every"];
const flagsOfVerb: Readonly<Record<string, readonly string[]>> = {
  list: ["type"],
  show: [],
  create: [...specFlags, "method", "payload", "overlap", "catchup", "jitter", "start", "end", "description", "upsert"],
  pause: ["note"],
  resume: [],
  trigger: [],
  preview: [...specFlags, "count"],
  delete: [],
};

const overlaps: Record<string, OverlapPolicy> = {
  skip: OverlapPolicy.SKIP,
  buffer_one: OverlapPolicy.BUFFER_ONE,
  allow_all: OverlapPolicy.ALLOW_ALL,
};

type Values = ReturnType<typeof parseOperation<typeof schedulesOptions>>["values"];

/** `taskwire schedules list|show|create|pause|resume|trigger|preview|delete`. */
export async function schedulesCommand(args: string[], context: OperationContext): Promise<void> {
  const { values, positionals } = parseOperation(args, schedulesOptions, schedulesUsage);
  const { terminal } = context;
  if (values.help) return terminal.print(schedulesUsage);
  const verb = positionals[1];
  const rest = operands(positionals);
  checkFlags(values, schedulesOptions, flagsOfVerb, "schedules", verb);
  if (verb === undefined || !Object.hasOwn(flagsOfVerb, verb)) throw unknownVerb("schedules", verb, schedulesUsage);
  const now = new Date();
  if (verb === "list") {
    if (rest.length > 0) throw new UsageError(`schedules list takes no arguments, got "${rest.join(" ")}"`);
    return withGateway(context, values, async (client) => {
      const schedules = await client.schedules.listSchedules(values.type);
      if (values.json)
        return printJson(terminal, ListSchedulesResponseSchema, create(ListSchedulesResponseSchema, { schedules }));
      if (schedules.length === 0) return terminal.note("no schedules");
      for (const line of scheduleTable(schedules, terminal.columns)) terminal.print(line);
    });
  }
  const printTimes = (times: Date[]) => {
    if (values.json)
      return printJson(
        terminal,
        PreviewScheduleResponseSchema,
        create(PreviewScheduleResponseSchema, { times: times.map((t) => timestampFromDate(t)) }),
      );
    for (const time of times) terminal.print(time.toISOString());
  };
  if (verb === "preview" && rest.length === 0) {
    const spec = specOf(values, now);
    return withGateway(context, values, async (client) =>
      printTimes(await client.schedules.previewSchedule(spec, countOf(values.count), now)),
    );
  }
  if (rest.length !== 1) throw new UsageError(`schedules ${verb} needs one <type>/<id>, e.g. reports/nightly`);
  const [workerType, scheduleId] = target(rest[0] as string);
  /** The schedule as JSON; its task's payload needs the types' registry. */
  const show = async (schedule: ScheduleInfo, types: ClientTarget["types"]) =>
    printJson(
      terminal,
      GetScheduleResponseSchema,
      create(GetScheduleResponseSchema, { schedule }),
      (await types()).registry,
    );
  if (verb === "create") {
    if (!values.method) throw new UsageError("schedules create needs --method, the rpc its task runs");
    const method = values.method;
    const spec = specOf(values, now);
    const overlap = values.overlap === undefined ? OverlapPolicy.SKIP : overlaps[values.overlap];
    if (overlap === undefined)
      throw new UsageError(`--overlap must be skip, buffer_one or allow_all, got "${values.overlap}"`);
    let payload: JsonValue = {};
    if (values.payload !== undefined) {
      try {
        payload = JSON.parse(values.payload) as JsonValue;
      } catch (error) {
        throw new UsageError(`--payload is not JSON: ${(error as Error).message}`);
      }
    }
    return withGateway(context, values, async (client, target) => {
      const input = (await target.types()).resolve(`${workerType}/${method}`).input;
      const schedule: Schedule = create(ScheduleSchema, {
        workerType,
        scheduleId,
        spec,
        task: { workerType, method, payload: anyPack(input, fromJson(input, payload)) },
        overlap,
        catchupWindow: durationFlag("catchup", values.catchup),
        description: values.description ?? "",
      });
      const created = await client.schedules.createSchedule(schedule, { upsert: values.upsert });
      if (values.json) return show(created, target.types);
      terminal.print(`${workerType}/${scheduleId}: next ${describeNext(created)}`);
    });
  }
  return withGateway(context, values, async (client, { types }) => {
    switch (verb) {
      case "show":
        return show(await client.schedules.getSchedule(workerType, scheduleId), types);
      case "pause": {
        const paused = await client.schedules.pauseSchedule(workerType, scheduleId, { note: values.note ?? "" });
        return values.json ? show(paused, types) : terminal.print(`${workerType}/${scheduleId}: paused`);
      }
      case "resume": {
        const resumed = await client.schedules.resumeSchedule(workerType, scheduleId);
        return values.json
          ? show(resumed, types)
          : terminal.print(`${workerType}/${scheduleId}: next ${describeNext(resumed)}`);
      }
      case "trigger": {
        const taskId = await client.schedules.triggerSchedule(workerType, scheduleId);
        if (values.json)
          return printJson(terminal, TriggerScheduleResponseSchema, create(TriggerScheduleResponseSchema, { taskId }));
        return terminal.print(taskId);
      }
      case "preview":
        return printTimes(
          await client.schedules.previewSchedule({ workerType, scheduleId }, countOf(values.count), now),
        );
      default: {
        await confirm(terminal, values.yes, `delete schedule ${workerType}/${scheduleId}`);
        await client.schedules.deleteSchedule(workerType, scheduleId);
        if (!values.json) terminal.print(`${workerType}/${scheduleId}: deleted`);
      }
    }
  });
}

/** `<type>/<id>`, split; a UsageError naming the form otherwise. */
function target(text: string): [string, string] {
  const [workerType, scheduleId, ...extra] = text.split("/");
  if (!workerType || !scheduleId || extra.length > 0)
    throw new UsageError(`"${text}" is not <type>/<id>, e.g. reports/nightly`);
  return [workerType, scheduleId];
}

/** The spec of --cron (with --tz) or --every, and --start, --end, --jitter. */
function specOf(values: Values, now: Date): ScheduleSpec {
  if ((values.cron === undefined) === (values.every === undefined))
    throw new UsageError("give either --cron EXPR (with --tz ZONE) or --every D");
  if (values.tz !== undefined && values.cron === undefined) throw new UsageError("--tz goes with --cron");
  return create(ScheduleSpecSchema, {
    cron: values.cron ?? "",
    timeZone: values.tz ?? "",
    every: durationFlag("every", values.every),
    startAt:
      values.start === undefined ? undefined : timestampFromDate(parseTimeFlag("start", values.start, now, "future")),
    endAt: values.end === undefined ? undefined : timestampFromDate(parseTimeFlag("end", values.end, now, "future")),
    jitter: durationFlag("jitter", values.jitter),
  });
}

function durationFlag(flag: string, value: string | undefined) {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0)
    throw new UsageError(`--${flag} must be a duration such as 90s, 15m or 2h, got "${value}"`);
  return durationFromMs(ms);
}

function countOf(value: string | undefined): number {
  if (value === undefined) return 5;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 100)
    throw new UsageError(`--count must be a whole number from 1 to 100, got "${value}"`);
  return Number(value);
}

function describeNext(info: ScheduleInfo): string {
  if (info.paused) return "none (paused)";
  return info.nextTime ? timestampDate(info.nextTime).toISOString() : "none (ended)";
}

/** What a spec says, short: the cron and its zone, or the interval. */
function describeSpec(spec: ScheduleSpec | undefined): string {
  if (!spec) return "";
  if (spec.cron) return spec.timeZone ? `${spec.cron} (${spec.timeZone})` : spec.cron;
  return spec.every ? `every ${Number(spec.every.seconds)}s` : "";
}

/** The schedules as a table: one line each. */
function scheduleTable(schedules: readonly ScheduleInfo[], width: number): string[] {
  return layoutTable(
    [
      { header: "SCHEDULE" },
      { header: "WHEN", shrink: true },
      { header: "NEXT" },
      { header: "LAST" },
      { header: "FIRED", align: "right" },
      { header: "SKIPPED", align: "right" },
      { header: "PAUSED" },
    ],
    schedules.map((info) => [
      `${info.schedule?.workerType}/${info.schedule?.scheduleId}`,
      describeSpec(info.schedule?.spec),
      info.nextTime ? timestampDate(info.nextTime).toISOString() : "-",
      info.lastTime ? timestampDate(info.lastTime).toISOString() : "-",
      String(info.fired),
      String(info.skipped),
      info.paused ? "yes" : "no",
    ]),
    width,
  );
}
