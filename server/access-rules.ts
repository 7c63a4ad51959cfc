import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { GatewayService } from "../gen/taskwire/v1/gateway_service_pb.ts";
import { QueueService } from "../gen/taskwire/v1/queue_service_pb.ts";
import { ScheduleService } from "../gen/taskwire/v1/schedule_service_pb.ts";
import { TaskService } from "../gen/taskwire/v1/task_service_pb.ts";
import { WorkerService } from "../gen/taskwire/v1/worker_service_pb.ts";
import type { TaskServiceDefinition } from "../sdk/core/index.ts";
import { workerTypeOf } from "../sdk/core/index.ts";
import { type AuditLog, type Authenticator, peerKey, principalKey, requirePermission } from "./gateway-auth.ts";
import type { Action, Principal } from "./permissions.ts";

/** What a call needs: an action on worker types, any authenticated caller, or nothing. */
export type Access = { readonly action: Action; readonly workerTypes: readonly string[] } | "authenticated" | "open";

type Rule = (message: Record<string, unknown>) => Access;

const ofTask =
  (action: Action): Rule =>
  (m) => ({ action, workerTypes: [workerTypeOf(m.taskId as string)] });
const ofType =
  (action: Action): Rule =>
  (m) => ({ action, workerTypes: [m.workerType as string] });

const ofSchedule =
  (action: Action): Rule =>
  (m) => {
    const schedule = m.schedule as { workerType: string } | undefined;
    // Without one, the service refuses it (INVALID_ARGUMENT), to a known caller.
    return schedule ? { action, workerTypes: [schedule.workerType] } : "authenticated";
  };

/** Each method of Taskwire's services and what it needs, from its request. */
const rules: Record<string, Rule> = {
  // A submit without a task is refused by the service (INVALID_ARGUMENT), to a known caller.
  [`${TaskService.typeName}/Submit`]: (m) => {
    const task = m.task as { workerType: string } | undefined;
    return task ? { action: "submit", workerTypes: [task.workerType] } : "authenticated";
  },
  [`${TaskService.typeName}/BatchSubmit`]: (m) => ({
    action: "submit",
    workerTypes: [...new Set((m.tasks as { workerType: string }[]).map((t) => t.workerType))],
  }),
  [`${TaskService.typeName}/GetTask`]: ofTask("read"),
  [`${TaskService.typeName}/WatchTask`]: ofTask("read"),
  [`${TaskService.typeName}/WaitTask`]: ofTask("read"),
  [`${TaskService.typeName}/WaitTasks`]: (m) => ({
    action: "read",
    workerTypes: [...new Set((m.taskIds as string[]).map(workerTypeOf))],
  }),
  [`${TaskService.typeName}/CancelTask`]: ofTask("cancel"),
  // Without a worker type it lists every type: that needs read:*.
  [`${TaskService.typeName}/ListTasks`]: (m) => ({ action: "read", workerTypes: [(m.workerType as string) || "*"] }),
  [`${QueueService.typeName}/GetQueue`]: ofType("read"),
  [`${QueueService.typeName}/ListDeadLetters`]: ofType("read"),
  [`${QueueService.typeName}/GetDeadLetter`]: ofTask("read"),
  [`${QueueService.typeName}/PauseQueue`]: ofType("operate"),
  [`${QueueService.typeName}/ResumeQueue`]: ofType("operate"),
  [`${QueueService.typeName}/PurgeQueue`]: ofType("operate"),
  [`${QueueService.typeName}/RetryDeadLetter`]: ofTask("operate"),
  [`${QueueService.typeName}/PurgeDeadLetters`]: ofType("operate"),
  // The store holds every type's statuses: its size is read:*.
  [`${QueueService.typeName}/GetStore`]: () => ({ action: "read", workerTypes: ["*"] }),
  [`${QueueService.typeName}/GetThroughput`]: ofType("read"),
  // These answer with what the caller may read, or nothing.
  [`${QueueService.typeName}/ListQueues`]: () => "authenticated",
  [`${QueueService.typeName}/WatchQueues`]: () => "authenticated",
  [`${WorkerService.typeName}/ListWorkers`]: () => "authenticated",
  [`${WorkerService.typeName}/WatchWorkers`]: () => "authenticated",
  // A schedule submits tasks of its type: defining one is operating the type.
  [`${ScheduleService.typeName}/CreateSchedule`]: ofSchedule("operate"),
  [`${ScheduleService.typeName}/UpdateSchedule`]: ofSchedule("operate"),
  [`${ScheduleService.typeName}/DeleteSchedule`]: ofType("operate"),
  [`${ScheduleService.typeName}/PauseSchedule`]: ofType("operate"),
  [`${ScheduleService.typeName}/ResumeSchedule`]: ofType("operate"),
  [`${ScheduleService.typeName}/TriggerSchedule`]: ofType("submit"),
  [`${ScheduleService.typeName}/GetSchedule`]: ofType("read"),
  // Without a worker type it answers with the schedules the caller may read.
  [`${ScheduleService.typeName}/ListSchedules`]: (m) =>
    m.workerType ? { action: "read", workerTypes: [m.workerType as string] } : "authenticated",
  // A spec alone reads nothing stored.
  [`${ScheduleService.typeName}/PreviewSchedule`]: (m) =>
    m.workerType ? { action: "read", workerTypes: [m.workerType as string] } : "authenticated",
  [`${GatewayService.typeName}/WhoAmI`]: () => "authenticated",
  [`${GatewayService.typeName}/ListTaskTypes`]: () => "authenticated",
};

/**
 * What a call of `method` with `message` needs. A typed route of a task service
 * submits a task of its type and returns its result (submit and read); the
 * health service is open, for load balancers and probes; reflection needs a
 * caller; any other service (added with `routes`) needs admin.
 */
export function accessOf(
  method: DescMethod,
  message: unknown,
  taskServices: ReadonlyMap<string, TaskServiceDefinition>,
): Access[] {
  const service = method.parent.typeName;
  const rule = rules[`${service}/${method.name}`];
  if (rule) return [rule(message as Record<string, unknown>)];
  const definition = taskServices.get(service);
  if (definition) {
    return [
      { action: "submit", workerTypes: [definition.workerType] },
      { action: "read", workerTypes: [definition.workerType] },
    ];
  }
  if (service === "grpc.health.v1.Health") return ["open"];
  if (service.startsWith("grpc.reflection.")) return ["authenticated"];
  return [{ action: "admin", workerTypes: ["*"] }];
}

/**
 * The interceptor in front of every call, on every protocol and route (the fast
 * path too): it authenticates the caller, puts its principal in the call's
 * context values (`principalOf`), checks the call's {@link accessOf}, and logs
 * each refusal as one structured line.
 */
export function authInterceptor(
  authenticator: Authenticator,
  taskServices: readonly TaskServiceDefinition[],
  log: AuditLog,
): Interceptor {
  const byService = new Map(taskServices.map((d) => [d.service.typeName, d]));
  return (next) => async (request) => {
    const path = `/${request.method.parent.typeName}/${request.method.name}`;
    let principal: Principal | undefined;
    let access: Access[] = [];
    try {
      // A server stream's one request is read before the implementation sees it.
      let message: unknown;
      if (request.stream) {
        const iterator = request.message[Symbol.asyncIterator]();
        const first = await iterator.next();
        message = first.value;
        request = { ...request, message: replay(first, iterator) } as typeof request;
      } else message = request.message;
      access = accessOf(request.method, message, byService);
      if (access.includes("open")) return await next(request);
      principal = await authenticator.authenticate(request.header, request.contextValues.get(peerKey));
      for (const needed of access) {
        if (typeof needed === "object") requirePermission(principal, needed.action, needed.workerTypes);
      }
    } catch (error) {
      const refusal = ConnectError.from(error);
      if (refusal.code !== Code.Unauthenticated && refusal.code !== Code.PermissionDenied) throw error;
      const needed = access.find((a) => typeof a === "object");
      log({
        time: new Date().toISOString(),
        principal: principal?.name ?? "anonymous",
        via: principal?.via ?? "anonymous",
        method: path,
        ...(needed ? { action: needed.action, workerTypes: needed.workerTypes } : {}),
        outcome: "refused",
        code: Code[refusal.code],
        reason: refusal.rawMessage,
      });
      throw refusal;
    }
    request.contextValues.set(principalKey, principal);
    return next(request);
  };
}

/** The first result of an iterator, then the rest of it. */
async function* replay<T>(first: IteratorResult<T>, rest: AsyncIterator<T>): AsyncIterable<T> {
  if (first.done) return;
  yield first.value;
  for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
}
