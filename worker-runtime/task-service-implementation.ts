import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { TaskMethod, TaskServiceDefinition } from "../sdk/core/index.ts";
import type { TaskContext } from "./task-context.ts";

/** A handler of one task method: typed request in, typed result out. */
export type TaskMethodHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  ctx: TaskContext,
) => Promise<MessageInitShape<O>>;

/** The handlers of a task service, keyed like its methods. */
export type TaskServiceHandlers<M extends Record<string, TaskMethod>> = {
  [K in keyof M]: M[K] extends TaskMethod<infer I, infer O> ? TaskMethodHandler<I, O> : never;
};

const implementationBrand = Symbol.for("taskwire.TaskServiceImplementation");

/**
 * A task service definition bound to its handlers: what a handler module exports
 * and what `createWorker` runs. Build it with the generated `implement<Service>()`.
 */
export interface TaskServiceImplementation<M extends Record<string, TaskMethod> = Record<string, TaskMethod>> {
  /** Marks values built by {@link implementTaskService} (see {@link isTaskServiceImplementation}). */
  readonly [implementationBrand]: true;
  /** The generated definition. */
  readonly definition: TaskServiceDefinition<M>;
  /** The user's handlers. */
  readonly handlers: TaskServiceHandlers<M>;
}

/**
 * Binds handlers to a task service definition. Generated `implement<Service>()`
 * functions call it with the service's typed handler interface.
 */
export function implementTaskService<M extends Record<string, TaskMethod>>(
  definition: TaskServiceDefinition<M>,
  handlers: TaskServiceHandlers<M>,
): TaskServiceImplementation<M> {
  return { [implementationBrand]: true, definition, handlers };
}

/** True for values built by {@link implementTaskService}, e.g. the exports of a handler module. */
export function isTaskServiceImplementation(value: unknown): value is TaskServiceImplementation {
  return typeof value === "object" && value !== null && implementationBrand in value;
}
