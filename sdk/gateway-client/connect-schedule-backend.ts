import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, type Transport } from "@connectrpc/connect";
import { ScheduleService } from "../../gen/taskwire/v1/schedule_service_pb.ts";
import type { ScheduleBackend } from "../core/index.ts";
import { gatewayCall as call, required } from "./gateway-call.ts";

/** ScheduleService through a gateway: the same {@link ScheduleBackend} as direct mode. */
export function createConnectScheduleBackend(transport: Transport): ScheduleBackend {
  const client = createClient(ScheduleService, transport);
  return {
    createSchedule: (schedule, options = {}) =>
      call(client.createSchedule({ schedule, upsert: options.upsert ?? false })).then((r) =>
        required(r.schedule, "CreateSchedule"),
      ),
    updateSchedule: (schedule, options = {}) =>
      call(client.updateSchedule({ schedule, revision: options.revision ?? 0n })).then((r) =>
        required(r.schedule, "UpdateSchedule"),
      ),
    deleteSchedule: (workerType, scheduleId) =>
      call(client.deleteSchedule({ workerType, scheduleId })).then(() => undefined),
    pauseSchedule: (workerType, scheduleId, options = {}) =>
      call(client.pauseSchedule({ workerType, scheduleId, note: options.note ?? "" })).then((r) =>
        required(r.schedule, "PauseSchedule"),
      ),
    resumeSchedule: (workerType, scheduleId) =>
      call(client.resumeSchedule({ workerType, scheduleId })).then((r) => required(r.schedule, "ResumeSchedule")),
    getSchedule: (workerType, scheduleId) =>
      call(client.getSchedule({ workerType, scheduleId })).then((r) => required(r.schedule, "GetSchedule")),
    listSchedules: (workerType = "") => call(client.listSchedules({ workerType })).then((r) => r.schedules),
    triggerSchedule: (workerType, scheduleId) =>
      call(client.triggerSchedule({ workerType, scheduleId })).then((r) => r.taskId),
    previewSchedule: (of, count = 5, after) =>
      call(
        client.previewSchedule({
          ...("workerType" in of ? of : { spec: of }),
          count,
          after: after && timestampFromDate(after),
        }),
      ).then((r) => r.times.map(timestampDate)),
  };
}
