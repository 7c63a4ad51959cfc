import type { Schedule, ScheduleInfo } from "../../gen/taskwire/v1/schedule_service_pb.ts";
import type { ScheduleSpec } from "../../gen/taskwire/v1/task_pb.ts";

/** Who makes a change, recorded with the schedule (the gateway's authenticated caller). */
export interface ScheduleChange {
  /** Recorded as the schedule's `updated_by`. */
  readonly by?: string;
}

/**
 * The operations of ScheduleService, independent of transport, as
 * {@link TaskBackend} is for TaskService: the gateway serves the NATS
 * implementation; clients call it directly or through the gateway
 * (`client.schedules`). Every failure is a TaskError: a schedule that does not
 * exist is NOT_FOUND, a bad definition INVALID_ARGUMENT naming the field.
 */
export interface ScheduleBackend {
  /** Creates a schedule; ALREADY_EXISTS unless `upsert`, which replaces it only where it differs. */
  createSchedule(schedule: Schedule, options?: ScheduleChange & { upsert?: boolean }): Promise<ScheduleInfo>;
  /** Replaces a schedule's definition; ABORTED when `revision` is given and the schedule changed since. */
  updateSchedule(schedule: Schedule, options?: ScheduleChange & { revision?: bigint }): Promise<ScheduleInfo>;
  /** Deletes a schedule; the tasks it submitted are kept. */
  deleteSchedule(workerType: string, scheduleId: string): Promise<void>;
  /** Stops a schedule from firing until resumed. */
  pauseSchedule(
    workerType: string,
    scheduleId: string,
    options?: ScheduleChange & { note?: string },
  ): Promise<ScheduleInfo>;
  /** Lets a paused schedule fire again, from its next time after now. */
  resumeSchedule(workerType: string, scheduleId: string, options?: ScheduleChange): Promise<ScheduleInfo>;
  /** One schedule with its state. */
  getSchedule(workerType: string, scheduleId: string): Promise<ScheduleInfo>;
  /** The schedules of a worker type, or of every type, by type then id. */
  listSchedules(workerType?: string): Promise<ScheduleInfo[]>;
  /** Submits the schedule's task now; resolves with its id. */
  triggerSchedule(workerType: string, scheduleId: string): Promise<string>;
  /** The next `count` (default 5) times after `after` (default now) of a stored schedule or of a spec. */
  previewSchedule(
    of: { workerType: string; scheduleId: string } | ScheduleSpec,
    count?: number,
    after?: Date,
  ): Promise<Date[]>;
}
