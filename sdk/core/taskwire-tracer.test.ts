import { Code } from "@connectrpc/connect";
import { trace } from "@opentelemetry/api";
import { BatchSpanProcessor, InMemorySpanExporter, TracerProvider } from "@opentelemetry/sdk-trace";
import { afterEach, describe, expect, it } from "vitest";
import { codeName, flushTraces, taskwireTracer } from "./taskwire-tracer.ts";
import { taskwireVersion } from "./version.ts";

describe("Taskwire's tracer", () => {
  afterEach(() => trace.disable());

  it("spells codes as the Connect protocol does", () => {
    expect([Code.Canceled, Code.NotFound, Code.DeadlineExceeded, Code.DataLoss].map(codeName)).toEqual([
      "canceled",
      "not_found",
      "deadline_exceeded",
      "data_loss",
    ]);
  });

  it("finds a provider registered after it was first asked for, and flushes what a batching processor holds", async () => {
    taskwireTracer().startSpan("before any SDK").end();
    const exporter = new InMemorySpanExporter();
    // A delay no test waits for: only the flush exports.
    const processor = new BatchSpanProcessor({ exporter, scheduledDelayMillis: 600_000 });
    const provider = new TracerProvider({ spanProcessors: [processor] });
    trace.setGlobalTracerProvider(provider);
    taskwireTracer().startSpan("held").end();
    expect(exporter.getFinishedSpans()).toEqual([]);
    await flushTraces();
    expect(exporter.getFinishedSpans().map((span) => [span.name, span.instrumentationScope])).toEqual([
      ["held", { name: "taskwire", version: taskwireVersion, schemaUrl: undefined }],
    ]);
    await provider.shutdown();
  });

  it("resolves at once without an SDK", async () => {
    await flushTraces(60_000);
  });
});
