import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type { JsMsg } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { WorkItemSchema } from "../gen/taskwire/v1/task_pb.ts";
import { TaskError } from "../sdk/core/task-error.ts";
import { AttemptSpan } from "./attempt-span.ts";

const workItem = create(WorkItemSchema, {
  taskId: "probe.0000000000AAAAAAAA00000000",
  workerType: "probe",
  method: "Run",
});
const sendTraceId = "4bf92f3577b34da6a3ce929d0e0e4736";
const sendSpanId = "00f067aa0ba902b7";

/** A delivery as the worker takes it: a subject, the headers, the consumer. */
function delivery(traced: boolean): JsMsg {
  const h = headers();
  // Another language's publisher may write the name in another case.
  if (traced) h.set("Traceparent", `00-${sendTraceId}-${sendSpanId}-01`);
  return {
    subject: "taskwire.task.probe.normal.0000000000AAAAAAAA00000000",
    headers: traced ? h : undefined,
    data: new Uint8Array(3),
    info: { consumer: "probe_normal" },
  } as unknown as JsMsg;
}

describe("an attempt's span", () => {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });

  beforeAll(() => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    trace.setGlobalTracerProvider(provider);
  });
  beforeEach(() => exporter.reset());
  afterAll(async () => {
    trace.disable();
    context.disable();
    propagation.disable();
    await provider.shutdown();
  });

  it("is a child of the send its headers carry, linked to it, and the handler's spans are its children", () => {
    const span = new AttemptSpan(delivery(true), workItem, "w-1");
    span.run(() => trace.getTracer("handler").startSpan("work").end());
    span.end(1, "succeeded");
    const [work, attempt] = exporter.getFinishedSpans();
    expect(attempt).toMatchObject({
      name: "process taskwire.task.probe.normal.*",
      kind: SpanKind.CONSUMER,
      parentSpanContext: { traceId: sendTraceId, spanId: sendSpanId },
      attributes: { "messaging.client.id": "w-1", "taskwire.attempt": 1, "taskwire.outcome": "succeeded" },
    });
    expect(attempt?.links.map((link) => link.context.spanId)).toEqual([sendSpanId]);
    expect(work?.parentSpanContext?.spanId).toBe(attempt?.spanContext().spanId);
  });

  it("ends once, ERROR with its error when the outcome could not be recorded", () => {
    const span = new AttemptSpan(delivery(true), workItem, "w-1");
    span.end(2, "unrecorded", new Error("status write timed out"));
    span.end(2, "succeeded");
    const spans = exporter.getFinishedSpans();
    expect(spans).toHaveLength(1);
    expect(spans[0]).toMatchObject({
      status: { code: SpanStatusCode.ERROR, message: "status write timed out" },
      attributes: { "taskwire.outcome": "unrecorded", "error.type": "unknown" },
    });
  });

  it("records a requeue's cause without making it an error", () => {
    const span = new AttemptSpan(delivery(false), workItem, "w-1");
    span.end(1, "requeued", new TaskError("the worker is draining", Code.Unavailable));
    const [attempt] = exporter.getFinishedSpans();
    expect(attempt?.status.code).toBe(SpanStatusCode.UNSET);
    expect(attempt?.events.map((event) => event.name)).toEqual(["exception"]);
    // No context came with the message: a root span, with no link.
    expect(attempt?.parentSpanContext).toBeUndefined();
    expect(attempt?.links).toEqual([]);
  });
});
