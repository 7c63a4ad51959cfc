import { Code } from "@connectrpc/connect";
import { type Span, SpanStatusCode, type Tracer, trace } from "@opentelemetry/api";
import { TaskError } from "./task-error.ts";
import { taskwireVersion } from "./version.ts";

/**
 * The tracer of every span Taskwire makes: "taskwire", at the package's
 * version, from the globally registered OpenTelemetry tracer provider. Without
 * an SDK registered its spans do nothing. Asked for at each use, not kept: an
 * SDK registered later, or through another copy of `@opentelemetry/api`, is
 * found all the same.
 */
export function taskwireTracer(): Tracer {
  return trace.getTracer("taskwire", taskwireVersion);
}

/**
 * A Connect code as the Connect protocol spells it ("not_found",
 * "deadline_exceeded"): the value of `rpc.connect_rpc.error_code` and of
 * `error.type` on Taskwire's spans.
 */
export function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/[A-Z]/g, (letter, at: number) => `${at ? "_" : ""}${letter.toLowerCase()}`);
}

/**
 * Marks a span failed: the error recorded as an exception event, `error.type`
 * its Connect code, and the status ERROR with its message.
 */
export function recordFailure(span: Span, error: unknown): void {
  const failure = TaskError.from(error);
  span.recordException(failure);
  span.setAttribute("error.type", codeName(failure.code));
  span.setStatus({ code: SpanStatusCode.ERROR, message: failure.rawMessage });
}

/**
 * Exports the spans the registered OpenTelemetry SDK still holds (its tracer
 * provider's `forceFlush`), waiting at most `timeoutMs`; resolves at once
 * without one. A process calls it before `process.exit()`, which leaves no
 * turn for a batching span processor to send what it holds.
 */
export async function flushTraces(timeoutMs = 2_000): Promise<void> {
  const registered = trace.getTracerProvider() as { getDelegate?: () => unknown };
  const provider = (registered.getDelegate?.() ?? registered) as { forceFlush?: () => Promise<void> };
  if (typeof provider.forceFlush !== "function") return;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  try {
    await Promise.race([provider.forceFlush().catch(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}
