import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type HandlerContext, type MethodImpl } from "@connectrpc/connect";
import type { TaskStatus } from "../gen/taskwire/v1/task_pb.ts";
import { decodeResult } from "../sdk/client/index.ts";
import type { TaskBackend, TaskMethod, TaskServiceDefinition } from "../sdk/core/index.ts";
import { taskFromOptions } from "../sdk/core/index.ts";
import { submitterOf } from "./gateway-auth.ts";
import { awaitTerminal } from "./task-service-routes.ts";

/** The request header that carries a typed call's idempotency key. */
export const idempotencyKeyHeader = "taskwire-idempotency-key";
/** The response header (and error metadata) that carries a typed call's task id. */
export const taskIdHeader = "taskwire-task-id";

/**
 * Serves each task service under its own name, as a plain RPC: a call to
 * `example.v1.HashService/Digest` submits a Digest task with the request as its
 * payload, waits for it and returns its typed result, or fails with the task's
 * error. The task id comes back in the `taskwire-task-id` response header.
 *
 * A call with a deadline that the task does not meet fails, a little before the
 * deadline so that the answer reaches the caller, with DEADLINE_EXCEEDED naming
 * the task id (in the message and in `taskwire-task-id`): the task goes on, and
 * the caller can poll TaskService for it. A `taskwire-idempotency-key` request
 * header makes retried calls share one task.
 */
export function typedTaskRoutes(
  backend: TaskBackend,
  definitions: readonly TaskServiceDefinition[],
): (router: ConnectRouter) => void {
  return (router) => {
    for (const definition of definitions) {
      for (const method of Object.values(definition.methods)) {
        const rpc = definition.service.methods.find((m) => m.name === method.name);
        if (rpc?.methodKind !== "unary") {
          throw new Error(`${definition.service.typeName}.${method.name} is not a unary rpc of the service`);
        }
        const impl = (request: MessageShape<DescMessage>, context: HandlerContext) =>
          callTask(backend, method, request, context);
        router.rpc(rpc, impl as MethodImpl<typeof rpc>);
      }
    }
  };
}

async function callTask<O extends DescMessage>(
  backend: TaskBackend,
  method: TaskMethod<DescMessage, O>,
  request: MessageShape<DescMessage>,
  context: HandlerContext,
): Promise<MessageShape<O>> {
  const idempotencyKey = context.requestHeader.get(idempotencyKeyHeader) ?? undefined;
  const task = taskFromOptions(method, request, { idempotencyKey });
  task.submittedBy = submitterOf(context);
  const { taskId } = await backend.submit(task);
  context.responseHeader.set(taskIdHeader, taskId);
  return decodeResult(await awaitBeforeDeadline(backend, taskId, context), method.output);
}

/**
 * The task's terminal status, or DEADLINE_EXCEEDED with its id shortly before the
 * call's deadline. The margin, a tenth of the time left (20 ms to 1 s), leaves the
 * answer time to travel: at the deadline itself the caller gives up on its own
 * and never sees the task id.
 */
async function awaitBeforeDeadline(backend: TaskBackend, taskId: string, context: HandlerContext): Promise<TaskStatus> {
  const timeoutMs = context.timeoutMs();
  if (timeoutMs === undefined) return awaitTerminal(backend, taskId, context.signal);
  const deadline = new AbortController();
  const timer = setTimeout(
    () =>
      deadline.abort(
        new ConnectError(
          `task ${taskId} has not finished by the call's deadline; it goes on: poll taskwire.v1.TaskService/GetTask or WaitTask with task_id "${taskId}"`,
          Code.DeadlineExceeded,
          { [taskIdHeader]: taskId },
        ),
      ),
    Math.max(0, timeoutMs - Math.min(1000, Math.max(20, timeoutMs / 10))),
  );
  try {
    return await awaitTerminal(backend, taskId, AbortSignal.any([context.signal, deadline.signal]));
  } finally {
    clearTimeout(timer);
  }
}
