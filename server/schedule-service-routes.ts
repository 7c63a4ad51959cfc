import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import { type Schedule, ScheduleService } from "../gen/taskwire/v1/schedule_service_pb.ts";
import { type ScheduleBackend, TaskError } from "../sdk/core/index.ts";
import { type AuditLog, principalOf } from "./gateway-auth.ts";
import { audited, readable } from "./queue-service-routes.ts";

/**
 * Serves `taskwire.v1.ScheduleService` by delegating each call to a
 * {@link ScheduleBackend}. Each change is logged to `log` with its caller and
 * outcome, and recorded in the schedule as `updated_by`.
 */
export function scheduleServiceRoutes(backend: ScheduleBackend, log: AuditLog): (router: ConnectRouter) => void {
  const operation = audited(log);
  return (router) => {
    router.service(ScheduleService, {
      createSchedule: ({ schedule, upsert }, context) =>
        operation(context, schedule?.workerType ?? "", async () => ({
          schedule: await backend.createSchedule(definition(schedule), {
            upsert,
            by: principalOf(context).name,
          }),
        })),
      updateSchedule: ({ schedule, revision }, context) =>
        operation(context, schedule?.workerType ?? "", async () => ({
          schedule: await backend.updateSchedule(definition(schedule), {
            revision,
            by: principalOf(context).name,
          }),
        })),
      deleteSchedule: ({ workerType, scheduleId }, context) =>
        operation(context, workerType, async () => {
          await backend.deleteSchedule(workerType, scheduleId);
          return {};
        }),
      pauseSchedule: ({ workerType, scheduleId, note }, context) =>
        operation(context, workerType, async () => ({
          schedule: await backend.pauseSchedule(workerType, scheduleId, { note, by: principalOf(context).name }),
        })),
      resumeSchedule: ({ workerType, scheduleId }, context) =>
        operation(context, workerType, async () => ({
          schedule: await backend.resumeSchedule(workerType, scheduleId, { by: principalOf(context).name }),
        })),
      getSchedule: async ({ workerType, scheduleId }) => ({
        schedule: await backend.getSchedule(workerType, scheduleId),
      }),
      listSchedules: async ({ workerType }, context) => ({
        schedules: (await backend.listSchedules(workerType || undefined)).filter((s) =>
          readable(context)(s.schedule?.workerType ?? ""),
        ),
      }),
      triggerSchedule: ({ workerType, scheduleId }, context) =>
        operation(context, workerType, async () => ({
          taskId: await backend.triggerSchedule(workerType, scheduleId),
        })),
      previewSchedule: async ({ workerType, scheduleId, spec, count, after }) => ({
        times: (
          await backend.previewSchedule(
            spec ?? { workerType, scheduleId },
            count || 5,
            after ? timestampDate(after) : undefined,
          )
        ).map((time) => timestampFromDate(time)),
      }),
    });
  };
}

function definition(schedule: Schedule | undefined): Schedule {
  if (!schedule) throw new TaskError("schedule: required", Code.InvalidArgument);
  return schedule;
}
