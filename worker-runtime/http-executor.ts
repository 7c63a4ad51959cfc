import { fileURLToPath } from "node:url";
import { createRegistry, type DescMessage, fromJson, type JsonValue, toJsonString } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type { TaskMethod, TaskServiceDefinition } from "../sdk/core/index.ts";
import { TaskError } from "../sdk/core/index.ts";
import type { TaskContext } from "./task-context.ts";
import {
  implementTaskService,
  type TaskMethodHandler,
  type TaskServiceHandlers,
  type TaskServiceImplementation,
} from "./task-service-implementation.ts";

/** The handler module supervisors run for HTTP executor pools. */
export const httpWorkerModule = fileURLToPath(
  new URL(`./http-worker.${import.meta.url.endsWith(".ts") ? "ts" : "js"}`, import.meta.url),
);

/**
 * Runs a task service's methods by POSTing each task to a URL (the App Engine
 * task queue's push model, quebert's dispatcher): an executor in any language
 * needs only an HTTP server.
 *
 * The request body is the task's request message in Connect JSON, with headers
 * `Taskwire-Task-Id`, `Taskwire-Attempt`, `Taskwire-Worker-Type`,
 * `Taskwire-Method` and `Taskwire-Meta-<key>` per metadata entry. A 2xx answer
 * is success and its JSON body is the result message; any other status, or no
 * answer before the attempt's deadline, fails the attempt, which is retried
 * with the task's backoff.
 *
 * `targets` maps rpc names (`"Digest"`) to URLs; methods without one are not run
 * by this worker.
 */
export function implementHttpService(
  definition: TaskServiceDefinition,
  targets: Readonly<Record<string, string>>,
): TaskServiceImplementation {
  const handlers: Record<string, TaskMethodHandler<DescMessage, DescMessage>> = {};
  for (const [key, method] of Object.entries(definition.methods)) {
    const target = targets[method.name];
    if (target === undefined) continue;
    try {
      new URL(target);
    } catch {
      throw new TaskError(`${definition.workerType}/${method.name}: "${target}" is not a URL`, Code.InvalidArgument);
    }
    handlers[key] = (request, ctx) => post(method, target, request, ctx);
  }
  for (const name of Object.keys(targets)) {
    if (!Object.values(definition.methods).some((m) => m.name === name)) {
      throw new TaskError(`${definition.workerType} has no rpc ${name} to send to ${targets[name]}`, Code.NotFound);
    }
  }
  return implementTaskService(definition, handlers as TaskServiceHandlers<Record<string, TaskMethod>>);
}

async function post(method: TaskMethod, url: string, request: unknown, ctx: TaskContext) {
  const registry = createRegistry(method.input, method.output);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "taskwire-task-id": ctx.taskId,
    "taskwire-attempt": String(ctx.attempt),
    "taskwire-worker-type": ctx.workerType,
    "taskwire-method": ctx.method,
  };
  for (const [key, value] of Object.entries(ctx.metadata)) headers[`taskwire-meta-${key}`] = value;
  let response: Response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers,
      body: toJsonString(method.input, request as never, { registry }),
      signal: ctx.signal,
    });
  } catch (error) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    throw new TaskError(`POST ${url}: ${(error as Error).message}`, Code.Unavailable);
  }
  const body = await response.text();
  if (!response.ok) {
    throw new TaskError(`POST ${url} answered ${response.status}: ${body.slice(0, 500)}`, Code.Unavailable);
  }
  try {
    return fromJson(method.output, (body ? JSON.parse(body) : {}) as JsonValue, { registry });
  } catch (error) {
    throw new TaskError(
      `POST ${url} answered ${response.status} with a body that is not a ${method.output.typeName}: ${(error as Error).message}`,
      Code.Internal,
    );
  }
}
