import { Code, ConnectError, createClient as createConnectClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { connect, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskService } from "../../gen/taskwire/v1/task_service_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import type { QueueBackend } from "../../sdk/core/queue-backend.ts";
import { createTaskRegistry, registryOf } from "../../sdk/core/task-registry.ts";
import { taskwireVersion } from "../../sdk/core/version.ts";
import { createNatsQueueBackend } from "../../sdk/nats/nats-queue-backend.ts";
import { createNatsTaskBackend } from "../../sdk/nats/nats-task-backend.ts";
import { createGateway, type Gateway } from "../../server/create-gateway.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import { probeHandler } from "../fixtures/probe-worker.ts";
import { implementProbeService, probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

const run = probeService.methods.run;
const services = [probeService];

/**
 * Traces: an OpenTelemetry SDK registered in this process (an in-memory
 * exporter), a gateway and a worker in it, against a real nats-server.
 */
describe("traces", () => {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  const contextManager = new AsyncLocalStorageContextManager();
  const register = () => {
    context.setGlobalContextManager(contextManager.enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    trace.setGlobalTracerProvider(provider);
  };
  const unregister = () => {
    trace.disable();
    context.disable();
    propagation.disable();
  };
  let nats: NatsServer;
  let nc: NatsConnection;
  let gateway: Gateway;
  let queues: QueueBackend;
  let client: TaskwireClient;
  let worker: Worker;

  beforeAll(async () => {
    register();
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    const backend = await createNatsTaskBackend({ nc, registry: createTaskRegistry(services) });
    queues = await createNatsQueueBackend({ nc, tasks: backend });
    gateway = await createGateway({ backend, queues, typeRegistry: registryOf(services) });
    client = await createClient({ gateway: gateway.url });
    const probe = probeHandler();
    worker = await createWorker({
      nats: nats.url,
      services: [
        implementProbeService({
          run: async (request, ctx) => {
            // A span of the handler's own: a child of its attempt's.
            trace.getTracer("handler").startSpan(`work of ${request.label}`).end();
            return probe(request, ctx);
          },
        }),
      ],
    });
  }, 30_000);

  afterAll(async () => {
    await worker?.close();
    await client?.close();
    await gateway?.close();
    await nc?.close();
    await nats?.stop();
    unregister();
    await provider.shutdown();
  });

  const finished = () => exporter.getFinishedSpans();
  const ofTask = (taskId: string, kind: SpanKind) =>
    finished().filter((span) => span.kind === kind && span.attributes["messaging.message.id"] === taskId);
  const withId = (spanId: string | undefined) => finished().find((span) => span.spanContext().spanId === spanId);
  const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;
  /** The task's CONSUMER spans once there are `count` of them, by attempt. */
  const attemptsOf = (taskId: string, count: number) =>
    poll(async () => {
      const spans = ofTask(taskId, SpanKind.CONSUMER);
      return spans.length >= count ? spans.toSorted(byAttempt) : undefined;
    });

  it("makes the gateway's span, the submit's send under it, and the attempt's process under and linked to the send", async () => {
    const task = await client.submitTask(run, { label: "once" });
    await task.result();
    const [attempt] = await attemptsOf(task.id, 1);
    const [send] = ofTask(task.id, SpanKind.PRODUCER);
    if (!attempt || !send) throw new Error("a span is missing");
    const call = withId(parentOf(send));
    expect(call).toMatchObject({
      name: "taskwire.v1.TaskService/Submit",
      kind: SpanKind.SERVER,
      attributes: { "rpc.system": "connect_rpc", "rpc.service": "taskwire.v1.TaskService", "rpc.method": "Submit" },
      instrumentationScope: { name: "taskwire", version: taskwireVersion },
    });
    expect(call?.parentSpanContext).toBeUndefined(); // the caller sent no trace context
    const subject = send.attributes["messaging.destination.name"];
    expect(subject).toMatch(/^taskwire\.task\.probe\.normal\.[^.]+$/);
    expect(send).toMatchObject({
      name: "send taskwire.task.probe.normal.*",
      attributes: {
        "messaging.system": "nats",
        "messaging.destination.template": "taskwire.task.probe.normal.*",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "taskwire.worker_type": "probe",
        "taskwire.method": "Run",
      },
    });
    expect(send.spanContext().traceId).toBe(call?.spanContext().traceId);
    expect(attempt).toMatchObject({
      name: "process taskwire.task.probe.normal.*",
      kind: SpanKind.CONSUMER,
      status: { code: SpanStatusCode.UNSET },
      attributes: {
        "messaging.system": "nats",
        "messaging.destination.name": subject,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.consumer.group.name": "probe_normal",
        "messaging.client.id": worker.id,
        "taskwire.worker_type": "probe",
        "taskwire.method": "Run",
        "taskwire.attempt": 1,
        "taskwire.outcome": "succeeded",
      },
    });
    expect(attempt.spanContext().traceId).toBe(send.spanContext().traceId);
    expect(parentOf(attempt)).toBe(send.spanContext().spanId);
    expect(attempt.links.map((link) => link.context.spanId)).toEqual([send.spanContext().spanId]);
    const work = finished().find((span) => span.name === "work of once");
    expect(work && parentOf(work)).toBe(attempt.spanContext().spanId);
  });

  it("makes one process span per attempt of a retried task, each ended, the failed one ERROR", async () => {
    const task = await client.submitTask(run, { label: "flaky", failAttempts: 1 });
    await task.result();
    const attempts = await attemptsOf(task.id, 2);
    const [send] = ofTask(task.id, SpanKind.PRODUCER);
    expect(attempts.map((span) => [span.attributes["taskwire.attempt"], span.attributes["taskwire.outcome"]])).toEqual([
      [1, "retrying"],
      [2, "succeeded"],
    ]);
    expect(attempts.map((span) => span.status.code)).toEqual([SpanStatusCode.ERROR, SpanStatusCode.UNSET]);
    expect(attempts.every((span) => span.ended)).toBe(true);
    expect(attempts[0]?.status.message).toBe("flaky failed attempt 1");
    expect(attempts[0]?.attributes["error.type"]).toBe("unknown");
    expect(attempts[0]?.events.map((event) => event.name)).toEqual(["exception"]);
    // Both deliveries of the one message: children of its send, and linked to it.
    for (const span of attempts) {
      expect(parentOf(span)).toBe(send?.spanContext().spanId);
      expect(span.links.map((link) => link.context.spanId)).toEqual([send?.spanContext().spanId]);
    }
  });

  it("carries the trace context in the task's NATS headers", async () => {
    const seen = nc.subscribe("taskwire.task.probe.>", { max: 1 });
    await nc.flush();
    const task = await client.submitTask(run, { label: "headers" });
    const message = await firstOf(seen);
    await task.result();
    const [send] = ofTask(task.id, SpanKind.PRODUCER);
    const { traceId, spanId } = send?.spanContext() ?? {};
    expect(message.headers?.get("traceparent")).toBe(`00-${traceId}-${spanId}-01`);
  });

  it("takes the caller's traceparent header as the parent of the gateway's span, on both the fast path and connect-node's", async () => {
    const task = await client.submitTask(run, { label: "parent" });
    await task.result();
    const transports: Record<string, Transport> = {
      "binary Connect (the fast path)": createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" }),
      "JSON Connect (connect-node)": createConnectTransport({
        baseUrl: gateway.url,
        httpVersion: "1.1",
        useBinaryFormat: false,
        jsonOptions: { registry: registryOf(services) },
      }),
    };
    for (const [name, transport] of Object.entries(transports)) {
      const tasks = createConnectClient(TaskService, transport);
      const traceId = randomHex(32);
      const parentId = randomHex(16);
      const headers = { traceparent: `00-${traceId}-${parentId}-01` };
      await tasks.getTask({ taskId: task.id }, { headers });
      const missing = await tasks
        .getTask({ taskId: `probe.${"0".repeat(26)}` }, { headers })
        .catch((error: unknown) => ConnectError.from(error));
      expect(missing, name).toMatchObject({ code: Code.NotFound });
      const watched: unknown[] = [];
      for await (const update of tasks.watchTask({ taskId: task.id }, { headers })) watched.push(update);
      expect(watched.length, name).toBeGreaterThan(0);
      const calls = await poll(async () => {
        const spans = finished().filter((span) => span.spanContext().traceId === traceId);
        return spans.length === 3 ? spans : undefined;
      });
      expect(
        calls.map((span) => [span.name, span.kind, parentOf(span), span.attributes["rpc.connect_rpc.error_code"]]),
        name,
      ).toEqual([
        ["taskwire.v1.TaskService/GetTask", SpanKind.SERVER, parentId, undefined],
        // A caller's error: its code, but not the ERROR status of a server fault.
        ["taskwire.v1.TaskService/GetTask", SpanKind.SERVER, parentId, "not_found"],
        ["taskwire.v1.TaskService/WatchTask", SpanKind.SERVER, parentId, undefined],
      ]);
      expect(calls.map((span) => span.status.code)).toEqual([
        SpanStatusCode.UNSET,
        SpanStatusCode.UNSET,
        SpanStatusCode.UNSET,
      ]);
    }
  });

  it("passes the caller's active span to the gateway through the SDK, down to the attempt", async () => {
    const tracer = trace.getTracer("caller");
    const caller = tracer.startSpan("caller");
    const task = await context.with(trace.setSpan(context.active(), caller), () =>
      client.submitTask(run, { label: "from a span" }),
    );
    caller.end();
    await task.result();
    const [attempt] = await attemptsOf(task.id, 1);
    const send = withId(attempt && parentOf(attempt));
    const call = withId(send && parentOf(send));
    expect(call?.name).toBe("taskwire.v1.TaskService/Submit");
    expect(call && parentOf(call)).toBe(caller.spanContext().spanId);
    expect(attempt?.spanContext().traceId).toBe(caller.spanContext().traceId);
  });

  it("continues the trace of a delayed task through the server's schedule and its move to the queue", async () => {
    const task = await client.submitTask(run, { label: "later" }, { delayMs: 100 });
    await task.result();
    const [attempt] = await attemptsOf(task.id, 1);
    const moved = withId(attempt && parentOf(attempt));
    const submitted = withId(moved && parentOf(moved));
    expect(moved?.name).toBe("send taskwire.task.probe.normal.*");
    expect(submitted?.name).toBe("send taskwire.sched.probe.wait.*");
    expect(withId(submitted && parentOf(submitted))?.name).toBe("taskwire.v1.TaskService/Submit");
  });

  it("makes a dead letter's retry a new send, under the span of whoever retried it", async () => {
    const task = await client.submitTask(run, { label: "doomed", nonRetryable: true });
    await expect(task.result()).rejects.toThrow("doomed cannot work");
    await poll(async () => ((await queues.listDeadLetters("probe")).deadLetters.length > 0 ? true : undefined));
    const operator = trace.getTracer("operator").startSpan("operator");
    await context.with(trace.setSpan(context.active(), operator), () => queues.retryDeadLetter(task.id));
    operator.end();
    const attempts = await attemptsOf(task.id, 2);
    const retried = attempts.find((span) => parentOf(span) !== parentOf(attempts[0] as ReadableSpan));
    const send = withId(retried && parentOf(retried));
    expect(send?.kind).toBe(SpanKind.PRODUCER);
    expect(send && parentOf(send)).toBe(operator.spanContext().spanId);
    expect(attempts.map((span) => span.attributes["taskwire.outcome"])).toEqual(["failed", "failed"]);
  });

  it("adds no header to an unkeyed task's publish without an SDK registered", async () => {
    unregister();
    try {
      const seen = nc.subscribe("taskwire.task.probe.>", { max: 1 });
      await nc.flush();
      const task = await client.submitTask(run, { label: "untraced" });
      expect((await firstOf(seen)).headers).toBeUndefined();
      await task.result();
    } finally {
      register();
    }
  });
});

function byAttempt(a: ReadableSpan, b: ReadableSpan): number {
  return Number(a.attributes["taskwire.attempt"]) - Number(b.attributes["taskwire.attempt"]);
}

async function firstOf(subscription: AsyncIterable<Msg>): Promise<Msg> {
  for await (const message of subscription) return message;
  throw new Error("the subscription ended without a message");
}

function randomHex(length: number): string {
  return Array.from({ length }, () => Math.floor(Math.random() * 16).toString(16)).join("");
}
