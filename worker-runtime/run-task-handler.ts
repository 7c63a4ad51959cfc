import { create, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { type WorkItem, WorkItemSchema } from "../gen/taskwire/v1/task_pb.ts";
import {
  createTaskRegistry,
  prepareTask,
  type SubmitOptions,
  type TaskMethod,
  taskFromOptions,
} from "../sdk/core/index.ts";
import { decodeMessage, encodeMessage } from "../sdk/wire/index.ts";
import { TaskContextController } from "./task-context-controller.ts";
import type { TaskServiceImplementation } from "./task-service-implementation.ts";

/** The request message type of a task method. */
type InputOf<T> = T extends TaskMethod<infer I, DescMessage> ? I : never;
/** The result message type of a task method. */
type OutputOf<T> = T extends TaskMethod<DescMessage, infer O> ? O : never;

/** Options of {@link runTaskHandler}: the submit options, and the attempt to pretend. */
export interface RunTaskHandlerOptions extends SubmitOptions {
  /** Which attempt this is, as `ctx.attempt` tells the handler. @default 1 */
  attempt?: number;
  /** Aborting it cancels the attempt, as `client.cancel()` would: the handler's `ctx.signal` aborts. */
  signal?: AbortSignal;
}

/** What one run of a handler did. */
export interface HandlerRun<O extends DescMessage> {
  /** The result, as the worker would store it (made from the handler's value and read back from its bytes). */
  readonly result: MessageShape<O>;
  /** Each `ctx.progress()` call, in order. */
  readonly progress: ReadonlyArray<{
    /** The fraction done, 0 to 1, as passed. */
    readonly fraction: number;
    /** The message passed with it, or "". */
    readonly message: string;
  }>;
  /** How many times the handler called `ctx.heartbeat()`. */
  readonly heartbeats: number;
}

/**
 * Runs one handler of a task service in this process, with no NATS: the
 * request is checked and encoded as a submit would (required fields, options),
 * the handler gets the context a worker would give it (deadline, attempt,
 * metadata, a signal that aborts at the deadline), and its result is encoded
 * and decoded as the worker's record would be. A handler's error is thrown as
 * it is, so a test can check a `NonRetryableError` or a retryable failure.
 *
 * ```ts
 * import { runTaskHandler } from "taskwire/testing";
 * const { result } = await runTaskHandler(greeter, "greet", { name: "Ada" });
 * assert.equal(result.message, "Hello, Ada!");
 * ```
 */
export async function runTaskHandler<M extends Record<string, TaskMethod>, K extends keyof M & string>(
  implementation: TaskServiceImplementation<M>,
  method: K,
  request: MessageInitShape<InputOf<M[K]>>,
  options: RunTaskHandlerOptions = {},
): Promise<HandlerRun<OutputOf<M[K]>>> {
  const { definition } = implementation;
  const taskMethod = definition.methods[method] as TaskMethod<InputOf<M[K]>, OutputOf<M[K]>> | undefined;
  if (!taskMethod) {
    throw new Error(
      `${definition.service.typeName} has no method "${method}"; its methods are ${Object.keys(definition.methods).join(", ")}`,
    );
  }
  // As a submit makes it: the same validation, defaults and encoding.
  const prepared = prepareTask(createTaskRegistry([definition]), taskFromOptions(taskMethod, request, options));
  const workItem: WorkItem = decodeMessage(WorkItemSchema, prepared.bytes);
  const progress: { fraction: number; message: string }[] = [];
  let heartbeats = 0;
  const timeoutMs = workItem.timeout ? durationMs(workItem.timeout) : 60_000;
  const ctx = new TaskContextController(
    workItem.taskId,
    workItem.workerType,
    workItem.method,
    options.attempt ?? 1,
    workItem.retry?.maxAttempts ?? 1,
    new Date(Date.now() + timeoutMs),
    workItem.metadata,
    undefined,
    "test-worker",
    (fraction, message) => progress.push({ fraction, message }),
    () => heartbeats++,
  );
  const cancel = () => ctx.abort("cancelled");
  if (options.signal?.aborted) cancel();
  options.signal?.addEventListener("abort", cancel, { once: true });
  try {
    const handler = implementation.handlers[method] as (
      request: MessageShape<DescMessage>,
      ctx: TaskContextController,
    ) => Promise<MessageInitShape<DescMessage>>;
    const value = await handler(decodeMessage(taskMethod.input, workItem.payload), ctx);
    const output: DescMessage = taskMethod.output;
    const result = decodeMessage(output, encodeMessage(output, create(output, value)));
    return { result: result as MessageShape<OutputOf<M[K]>>, progress, heartbeats };
  } finally {
    options.signal?.removeEventListener("abort", cancel);
    ctx.dispose();
  }
}
