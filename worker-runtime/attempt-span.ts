import type { JsMsg } from "@nats-io/jetstream";
import { type Context, context, type Link, type Span, SpanKind, trace } from "@opentelemetry/api";
import type { WorkItem } from "../gen/taskwire/v1/task_pb.ts";
import { recordFailure, TaskError, taskwireTracer } from "../sdk/core/index.ts";
import { destinationTemplate, extractTraceContext } from "../sdk/nats/index.ts";
import type { AttemptOutcome } from "./worker-event.ts";

/**
 * How an attempt's span ends: its outcome, or "unrecorded" when the outcome
 * could not be written (the worker reports an error event, and the message,
 * left unacked, is redelivered).
 */
export type SpanOutcome = AttemptOutcome | "unrecorded";

/** Outcomes of an attempt that failed: their span's status is ERROR. */
const failures: ReadonlySet<SpanOutcome> = new Set(["failed", "retrying", "expired", "unrecorded"]);

/**
 * One attempt's CONSUMER span, `process <destination template>` in the
 * OpenTelemetry messaging conventions. It starts with the attempt and ends
 * once, with its outcome. Its parent is the context the message's headers
 * carry (the submit's `send` span), which it also links to, as the
 * conventions ask of a message's creation context: each redelivery and retry
 * of one message is a span of its own under the same `send`.
 */
export class AttemptSpan {
  private readonly span: Span;
  /** What the handler runs in: the message's context (its baggage too) with this span; none without a span to carry. */
  private readonly context: Context | undefined;
  private ended = false;

  constructor(msg: JsMsg, workItem: WorkItem, workerId: string) {
    const sent = extractTraceContext(msg.headers);
    const sender = trace.getSpanContext(sent);
    const links: Link[] | undefined = sender && trace.isSpanContextValid(sender) ? [{ context: sender }] : undefined;
    const template = destinationTemplate(msg.subject);
    this.span = taskwireTracer().startSpan(`process ${template}`, { kind: SpanKind.CONSUMER, links }, sent);
    this.context = trace.isSpanContextValid(this.span.spanContext()) ? trace.setSpan(sent, this.span) : undefined;
    if (!this.span.isRecording()) return;
    this.span.setAttributes({
      "messaging.system": "nats",
      "messaging.destination.name": msg.subject,
      "messaging.destination.template": template,
      "messaging.operation.type": "process",
      "messaging.operation.name": "process",
      "messaging.message.id": workItem.taskId,
      "messaging.message.body.size": msg.data.byteLength,
      "messaging.consumer.group.name": msg.info.consumer,
      "messaging.client.id": workerId,
      "taskwire.worker_type": workItem.workerType,
      "taskwire.method": workItem.method,
    });
  }

  /** Calls `fn` (the handler) with this span active, so the spans it makes are its children. */
  run<T>(fn: () => T): T {
    return this.context ? context.with(this.context, fn) : fn();
  }

  /**
   * Ends the span with the attempt's number and outcome (`taskwire.attempt`,
   * `taskwire.outcome`). A failed attempt's status is ERROR, its error
   * recorded; another outcome's error (a requeue's cause) is recorded only.
   * Later calls do nothing.
   */
  end(attempt: number, outcome: SpanOutcome, error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    if (this.span.isRecording()) {
      this.span.setAttributes({ "taskwire.attempt": attempt, "taskwire.outcome": outcome });
      if (failures.has(outcome)) recordFailure(this.span, error ?? `the attempt ended ${outcome}`);
      else if (error !== undefined) this.span.recordException(TaskError.from(error));
    }
    this.span.end();
  }
}
