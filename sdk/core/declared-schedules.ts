import { create, fromJsonString, getOption, hasOption } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { schedule as scheduleOption } from "../../gen/taskwire/v1/options_pb.ts";
import { type Schedule, ScheduleSchema } from "../../gen/taskwire/v1/schedule_service_pb.ts";
import { TaskError } from "./task-error.ts";
import type { TaskServiceDefinition } from "./task-method.ts";

/**
 * The schedules a task service declares on its rpcs with `(taskwire.v1.schedule)`,
 * as definitions to store. A bad payload_json is INVALID_ARGUMENT naming the rpc
 * and the schedule.
 */
export function declaredSchedules(definition: TaskServiceDefinition): Schedule[] {
  const schedules: Schedule[] = [];
  for (const method of definition.service.methods) {
    if (!hasOption(method, scheduleOption)) continue;
    for (const declared of getOption(method, scheduleOption)) {
      let payload: ReturnType<typeof create<typeof method.input>>;
      try {
        payload = declared.payloadJson ? fromJsonString(method.input, declared.payloadJson) : create(method.input);
      } catch (error) {
        throw new TaskError(
          `${definition.service.typeName}.${method.name} schedule "${declared.id}": payload_json is not a ${method.input.typeName} (${(error as Error).message})`,
          Code.InvalidArgument,
        );
      }
      schedules.push(
        create(ScheduleSchema, {
          workerType: definition.workerType,
          scheduleId: declared.id,
          spec: declared.spec,
          task: { workerType: definition.workerType, method: method.name, payload: anyPack(method.input, payload) },
          overlap: declared.overlap,
          catchupWindow: declared.catchupWindow,
          description: declared.description,
        }),
      );
    }
  }
  return schedules;
}
