import type { TaskContext } from "./task-context.ts";

/**
 * Runs around every handler call (quebert's pre and post hooks): for logging,
 * metrics, tracing or access checks. Call `next()` to run the rest of the
 * chain and the handler; return its result (or another one), or throw.
 * The first middleware of the list is the outermost.
 *
 * ```ts
 * const timing: TaskMiddleware = async (_request, ctx, next) => {
 *   const started = Date.now();
 *   try { return await next(); } finally { metrics.observe(ctx.method, Date.now() - started); }
 * };
 * ```
 */
export type TaskMiddleware = (request: unknown, ctx: TaskContext, next: () => Promise<unknown>) => Promise<unknown>;

/**
 * A handler wrapped in middleware, outermost first. What a middleware returns
 * stands for the handler's result, so it must be the rpc's response message.
 */
export function withMiddleware<R, C extends TaskContext, O>(
  middleware: readonly TaskMiddleware[],
  handler: (request: R, ctx: C) => Promise<O>,
): (request: R, ctx: C) => Promise<O> {
  return middleware.reduceRight<(request: R, ctx: C) => Promise<O>>(
    (next, outer) => (request, ctx) => outer(request, ctx, () => next(request, ctx)) as Promise<O>,
    handler,
  );
}
