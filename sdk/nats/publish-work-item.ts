import type { MsgHdrs } from "@nats-io/transport-node";
import { context as activeContext, type Context, SpanKind, trace } from "@opentelemetry/api";
import { recordFailure, taskwireTracer } from "../core/index.ts";
import { type PubAck, publishToStream } from "./jetstream-ops.ts";
import type { RequestPipeline } from "./request-pipeline.ts";
import { injectTraceContext } from "./trace-headers.ts";

/** The task a WorkItem message carries, as its spans name it. */
export interface PublishedTask {
  readonly taskId: string;
  readonly workerType: string;
  /** The rpc, e.g. "Digest". */
  readonly method: string;
}

/**
 * Publishes a WorkItem as {@link publishToStream} does, as a PRODUCER span
 * `send <destination template>` of the OpenTelemetry messaging conventions,
 * ended when JetStream answers. The span's context travels in the message's
 * headers (`traceparent`, `tracestate`), so the worker's attempts join the
 * trace. Its parent is `parent`: by default the active context, which is the
 * gateway call's span, or the caller's own around a direct submit.
 *
 * Without an OpenTelemetry SDK this is a few no-op calls: nothing is injected,
 * so an unkeyed task's publish still has no headers.
 */
export function publishWorkItem(
  requests: RequestPipeline,
  subject: string,
  data: Uint8Array,
  headers: MsgHdrs | undefined,
  task: PublishedTask,
  parent: Context = activeContext.active(),
): Promise<PubAck> {
  const template = destinationTemplate(subject);
  const span = taskwireTracer().startSpan(`send ${template}`, { kind: SpanKind.PRODUCER }, parent);
  const carried = trace.isSpanContextValid(span.spanContext())
    ? injectTraceContext(trace.setSpan(parent, span), headers)
    : headers;
  const published = publishToStream(requests, subject, data, carried);
  if (!span.isRecording()) return published;
  span.setAttributes({
    "messaging.system": "nats",
    "messaging.destination.name": subject,
    "messaging.destination.template": template,
    "messaging.operation.type": "send",
    "messaging.operation.name": "send",
    "messaging.message.id": task.taskId,
    "messaging.message.body.size": data.byteLength,
    "taskwire.worker_type": task.workerType,
    "taskwire.method": task.method,
  });
  return published.then(
    (ack) => {
      // Within the duplicate window: nothing was stored, the first publish of the id stands.
      if (ack.duplicate) span.setAttribute("taskwire.duplicate", true);
      span.end();
      return ack;
    },
    (error: unknown) => {
      recordFailure(span, error);
      span.end();
      throw error;
    },
  );
}

/**
 * A WorkItem subject with its last token, the task's id token, as `*`
 * (`taskwire.task.hasher.normal.*`): the low-cardinality name of its
 * destination, which span names use, since every task has a subject of its own.
 */
export function destinationTemplate(subject: string): string {
  return `${subject.slice(0, subject.lastIndexOf(".") + 1)}*`;
}
