import { type ChildProcess, fork } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TaskState, TaskStatusSchema, WorkItemSchema } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { topology as subjects } from "../../sdk/core/names.ts";
import type { TaskError } from "../../sdk/core/task-error.ts";
import { createTaskRegistry, registryOf } from "../../sdk/core/task-registry.ts";
import { createNatsTaskBackend } from "../../sdk/nats/nats-task-backend.ts";
import { RequestPipeline } from "../../sdk/nats/request-pipeline.ts";
import { readStatus } from "../../sdk/nats/status-store.ts";
import { decodeMessage } from "../../sdk/wire/wire-codec.ts";
import { createGateway, type Gateway } from "../../server/create-gateway.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import { giveBack } from "../../worker-runtime/give-back.ts";
import type { WorkerOptions } from "../../worker-runtime/worker-options.ts";
import { type AttemptRecord, probeHandler } from "../fixtures/probe-worker.ts";
import { implementProbeService, probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

const run = probeService.methods.run;
// A short ack wait: a worker that stops heartbeating loses its task within a second.
const topology = { ackWaitMs: 1000 };
const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: TaskError) => error,
  );

/** Attempts: retries, timeouts, heartbeats, expiry, idempotency keys, bounds, progress. */
describe("attempts of a task", () => {
  let nats: NatsServer;
  let client: TaskwireClient;
  const workers: Worker[] = [];
  /** Worker processes a test started (see startWorkerProcess), killed after it. */
  const processes: ChildProcess[] = [];
  const attempts: AttemptRecord[] = [];
  const of = (label: string) => attempts.filter((a) => a.label === label);

  beforeAll(async () => {
    nats = await startNatsServer();
    client = await createClient({ nats: nats.url, services: [probeService] });
  }, 30_000);

  afterEach(async () => {
    // Killed where they stand, frozen or not (SIGCONT lets a stopped one take the SIGKILL).
    for (const child of processes.splice(0)) {
      child.kill("SIGKILL");
      child.kill("SIGCONT");
    }
    await Promise.all(workers.splice(0).map((w) => w.close()));
  });

  afterAll(async () => {
    await client?.close();
    await nats?.stop();
  });

  const startWorker = async (workerId = "in-process", options: Partial<WorkerOptions> = {}) => {
    const worker = await createWorker({
      nats: nats.url,
      workerId,
      topology,
      services: [implementProbeService({ run: probeHandler((a) => attempts.push(a)) })],
      ...options,
    });
    workers.push(worker);
    return worker;
  };
  /** A worker process of the probe service (one that a test can freeze), once ready. */
  const startWorkerProcess = async (workerId: string): Promise<ChildProcess> => {
    const child = fork("worker-runtime/worker-process.ts", {
      execArgv: ["--conditions=taskwire-source"],
      env: {
        ...process.env,
        TASKWIRE_NATS: nats.url,
        TASKWIRE_WORKER_MODULE: "test/fixtures/probe-worker.ts",
        TASKWIRE_WORKER_ID: workerId,
        TASKWIRE_ACK_WAIT_MS: String(topology.ackWaitMs),
      },
      stdio: "ignore",
    });
    processes.push(child);
    await new Promise((resolve) => child.once("message", resolve)); // ready
    return child;
  };
  // No best-effort RUNNING write within a test: a RUNNING record is then a start record.
  const startRecordsOnly = { statusIntervalMs: 60_000 };
  // One handler slot and one task pulled ahead; a short grace interrupts the running one.
  const leavesSoon = { concurrency: 1, shutdownGraceMs: 100 };

  it("retries with growing backoff until an attempt succeeds, keeping each error", async () => {
    await startWorker();
    const spy = await connect({ servers: nats.url });
    try {
      const sentFor = spyOnAcks(spy);
      await spy.flush();
      const task = await client.submitTask(run, { label: "flaky", failAttempts: 2 });
      const seen: TaskState[] = [];
      for await (const status of task.watch()) seen.push(status.state);
      expect(seen).toContain(TaskState.RETRYING);
      expect(seen.at(-1)).toBe(TaskState.SUCCEEDED);
      expect((await task.result()).attempt).toBe(3);
      const status = await task.status();
      expect(status.errorHistory.map((e) => [e.attempt, e.message])).toEqual([
        [1, "flaky failed attempt 1"],
        [2, "flaky failed attempt 2"],
      ]);
      // The backoff itself, as the worker asked for it: each failed attempt's nak carries its
      // delay, 50 ms then 100 ms (multiplier 2, jitter 1%, whole milliseconds). Exact however
      // loaded the machine: a backoff that did not grow fails here, whatever the timings.
      await spy.flush();
      const delaysMs = sentFor(Number(status.deliverySequence), true)
        .filter((sent) => sent.startsWith("-NAK"))
        .map((nak) => (JSON.parse(nak.slice("-NAK ".length)) as { delay: number }).delay / 1e6);
      expect(delaysMs).toHaveLength(2);
      const [firstDelay = 0, secondDelay = 0] = delaysMs;
      expect(firstDelay, `first backoff ${firstDelay} ms`).toBeGreaterThanOrEqual(49);
      expect(firstDelay, `first backoff ${firstDelay} ms`).toBeLessThanOrEqual(51);
      expect(secondDelay, `second backoff ${secondDelay} ms`).toBeGreaterThanOrEqual(99);
      expect(secondDelay, `second backoff ${secondDelay} ms`).toBeLessThanOrEqual(101);
      // And JetStream kept to it: no retry came sooner, however loaded the machine (load only
      // lengthens a gap). Less 10% for clocks read in whole milliseconds.
      const [first = 0, second = 0, third = 0] = of("flaky").map((a) => a.at);
      expect(second - first).toBeGreaterThanOrEqual(45);
      expect(third - second).toBeGreaterThanOrEqual(90);
    } finally {
      await spy.close();
    }
  });

  it("fails after max_attempts, or at once on a NonRetryableError", async () => {
    await startWorker();
    const doomed = await client.submitTask(run, { label: "doomed", failAttempts: 10 });
    expect((await failure(doomed.result()))?.message).toMatch(/doomed failed attempt 3/);
    const status = await doomed.status();
    expect(status).toMatchObject({ state: TaskState.FAILED, attempt: 3, maxAttempts: 3 });
    expect(status.errorHistory.map((e) => e.attempt)).toEqual([1, 2]);
    expect(of("doomed")).toHaveLength(3);

    const refused = await client.submitTask(run, { label: "refused", nonRetryable: true });
    await expect(refused.result()).rejects.toThrow(/refused cannot work/);
    expect((await refused.status()).error?.retryable).toBe(false);
    expect(of("refused")).toHaveLength(1);
  });

  it("aborts an attempt at its deadline; a result after the deadline does not count", async () => {
    await startWorker();
    const slow = await client.submitTask(run, { label: "slow", sleepMs: 5_000 }, { timeoutMs: 200 });
    const error = await failure(slow.result());
    expect(error?.code).toBe(Code.DeadlineExceeded);
    expect(error?.message).toMatch(/passed its deadline/);
    expect(of("slow")).toHaveLength(3); // each attempt timed out, and was retried
    expect(
      of("slow").every((a) => a.signal.aborted && (a.signal.reason as TaskError).code === Code.DeadlineExceeded),
    ).toBe(true);

    const stubborn = await client.submitTask(
      run,
      { label: "stubborn", sleepMs: 400, ignoreSignal: true },
      { timeoutMs: 100, retry: { maxAttempts: 1 } },
    );
    expect((await failure(stubborn.result()))?.code).toBe(Code.DeadlineExceeded);
    expect((await stubborn.status()).state).toBe(TaskState.FAILED);
  });

  it("a task not started before its expiry ends EXPIRED without running", async () => {
    const expiresAt = new Date(Date.now() + 300);
    const task = await client.submitTask(run, { label: "stale" }, { expiresAt });
    await sleep(expiresAt.getTime() - Date.now() + 50); // the time itself is the condition
    await startWorker();
    await expect(task.result()).rejects.toThrow(/not started before its expiry/);
    expect((await task.status()).state).toBe(TaskState.EXPIRED);
    expect(of("stale")).toHaveLength(0);
    const past = await failure(client.submitTask(run, { label: "past" }, { expiresAt: new Date(Date.now() - 1) }));
    expect(past?.code).toBe(Code.InvalidArgument);
    expect(past?.message).toMatch(/task.expires_at .* is already past/);
  });

  it("reports progress that getTask shows while the task runs", async () => {
    await startWorker();
    const task = await client.submitTask(run, { label: "progress", sleepMs: 1_500 });
    const status = await poll(async () => {
      const s = await task.status();
      return s.progress ? s : undefined;
    });
    expect(status.state).toBe(TaskState.RUNNING);
    expect(status.progress).toMatchObject({ fraction: 0.5, message: "half" });
    await task.result();
    expect((await task.status()).progress?.fraction).toBe(1);
  });

  it("a heartbeating task outlives ack_wait on one worker; a frozen worker loses its task to another", async () => {
    await startWorker();
    const long = await client.submitTask(run, { label: "long", sleepMs: 2_500, heartbeat: true });
    expect((await long.result()).attempt).toBe(1);
    expect(of("long")).toHaveLength(1);
    await Promise.all(workers.splice(0).map((w) => w.close()));

    // A worker process takes the task, then is frozen: no more heartbeats.
    const child = await startWorkerProcess("frozen");
    const task = await client.submitTask(run, { label: "frozen", sleepMs: 3_000 });
    await poll(async () => ((await task.status()).workerId === "frozen" ? true : undefined));
    child.kill("SIGSTOP");
    await startWorker("rescuer");
    const result = await task.result();
    expect(result.workerId).toBe("rescuer");
    // Attempt 2: the frozen worker's attempt counts. A pull request it made before freezing
    // may still take the first redelivery (it expires within ack_wait/2), but never starts it.
    expect(result.attempt).toBe(2);
  });

  it("a frozen worker that thaws leaves its task to the delivery that took it over", async () => {
    const child = await startWorkerProcess("thawed");
    const task = await client.submitTask(run, { label: "thawed", sleepMs: 2_500 });
    await poll(async () => ((await task.status()).workerId === "thawed" ? true : undefined));
    child.kill("SIGSTOP");
    await startWorker("successor");
    // The redelivery recorded its start: thaw the first worker while it runs. Its handler
    // ends at once (its time passed), and its write meets the successor's record.
    const taken = await poll(async () => {
      const status = await task.status();
      return status.workerId === "successor" ? status : undefined;
    });
    expect(taken).toMatchObject({ state: TaskState.RUNNING, attempt: 2 });
    child.kill("SIGCONT");
    // Before, the thawed worker wrote its own outcome over the successor's record (attempt
    // 1, its id) and acked, or, past its deadline, wrote RETRYING and nak'ed: a third run.
    const result = await task.result();
    expect(result).toMatchObject({ workerId: "successor", attempt: 2 });
    expect(await task.status()).toMatchObject({ state: TaskState.SUCCEEDED, attempt: 2, workerId: "successor" });
    expect(of("thawed").map((a) => a.attempt)).toEqual([2]); // the successor's run, and no other here
  });

  /** The probe type's queue consumer, as a test that takes deliveries itself reads it. */
  const probeConsumer = (nc: NatsConnection) =>
    jetstream(nc).consumers.get(subjects.streamName("probe"), subjects.consumerName("probe", "normal"));
  /** Writes the record a later delivery (`deliveryCount`) of the message `seq`, on another worker, writes as it starts. */
  const recordLaterDelivery = async (nc: NatsConnection, taskId: string, seq: number, deliveryCount: number) => {
    const kv = await new Kvm(nc).open(subjects.statusBucket);
    const later = create(TaskStatusSchema, {
      taskId,
      workerType: "probe",
      method: "Run",
      state: TaskState.RUNNING,
      attempt: 2,
      maxAttempts: 3,
      workerId: "successor",
      deliverySequence: BigInt(seq),
      deliveryCount,
    });
    return kv.put(taskId, toBinary(TaskStatusSchema, later));
  };
  /**
   * Every ack, nak and +WPI sent for the probe consumer's messages, by stream
   * sequence (the sixth token of the reply subject). Complete up to a moment once
   * the sender's connection and then this one are flushed: the server forwards
   * what a connection sent before it answers that connection's ping.
   */
  const spyOnAcks = (nc: NatsConnection) => {
    const sent = new Map<number, string[]>();
    nc.subscribe(`$JS.ACK.${subjects.streamName("probe")}.${subjects.consumerName("probe", "normal")}.>`, {
      callback: (_, msg) => {
        const seq = Number(msg.subject.split(".")[5]);
        sent.set(seq, [...(sent.get(seq) ?? []), msg.string()]);
      },
    });
    /** What was sent for the message `seq`: "+ACK", "-NAK", "+WPI"…; `whole`: as sent (a nak's delay too). */
    return (seq: number, whole = false) => (sent.get(seq) ?? []).map((m) => (whole ? m : (m.split(" ")[0] ?? "")));
  };

  it("a redelivery whose record names a later delivery leaves the task to it: it neither runs nor settles it", async () => {
    await startWorker("provisioner");
    await Promise.all(workers.splice(0).map((w) => w.close()));
    const task = await client.submitTask(run, { label: "overtaken-start" });
    const nc = await connect({ servers: nats.url });
    try {
      // Delivery 1, never acked: redelivered after ack_wait.
      const first = await (await probeConsumer(nc)).next({ expires: 5_000 });
      if (!first) throw new Error("the task was not delivered");
      // What delivery 3, on a worker that took the task over, records as it starts.
      await recordLaterDelivery(nc, task.id, first.seq, 3);
    } finally {
      await nc.close();
    }
    const outcomes: string[] = [];
    await startWorker("stale", {
      onEvent: (event) => {
        if (event.type === "attempt" && event.taskId === task.id) outcomes.push(event.outcome);
      },
    });
    // Delivery 2 is older than the record: left alone, neither run nor acked (an ack would
    // end the task unfinished, and result() would never come). Delivery 3 runs it.
    const result = await task.result();
    // The worker reports its attempt once its PubAck comes, which may be after the
    // client heard of the stored record.
    await poll(async () => (outcomes.length === 2 ? true : undefined));
    expect(outcomes).toEqual(["overtaken", "succeeded"]);
    expect(of("overtaken-start").map((a) => a.attempt)).toEqual([3]);
    expect(result.attempt).toBe(3);
  });

  it("a worker giving back a delivery that a later one overtook writes nothing and neither acks nor naks it", async () => {
    await startWorker("provisioner");
    await Promise.all(workers.splice(0).map((w) => w.close()));
    const task = await client.submitTask(run, { label: "overtaken-give-back" });
    const nc = await connect({ servers: nats.url });
    const spy = await connect({ servers: nats.url });
    try {
      const sentFor = spyOnAcks(spy);
      await spy.flush();
      const consumer = await probeConsumer(nc);
      const bucket = { kv: await new Kvm(nc).open(subjects.statusBucket), requests: new RequestPipeline(nc) };
      const first = await consumer.next({ expires: 5_000 });
      if (!first) throw new Error("the task was not delivered");
      const revision = await recordLaterDelivery(nc, task.id, first.seq, 3);
      // Delivery 1 finds the record as its write conflicts; delivery 2 (after ack_wait) reads it first.
      const second = await consumer.next({ expires: 5_000 });
      if (!second) throw new Error("the task was not redelivered");
      expect([first.info.deliveryCount, second.info.deliveryCount]).toEqual([1, 2]);
      expect(await giveBack(bucket, first)).toBe("overtaken");
      expect(await giveBack(bucket, second)).toBe("overtaken");
      expect(await readStatus(bucket, task.id)).toMatchObject({ revision, status: { workerId: "successor" } });
      bucket.requests.close();
      await nc.flush();
      await spy.flush();
      // A nak would queue a copy beside the one the later delivery runs; an ack would end it unfinished.
      expect(sentFor(first.seq)).toEqual([]);
      // The control: the spy sees a settle when there is one.
      second.ack();
      await nc.flush();
      await spy.flush();
      expect(sentFor(first.seq)).toEqual(["+ACK"]);
    } finally {
      await nc.close();
      await spy.close();
    }
  });

  it("an attempt that stalled past ack_wait does not nak its retry: the message comes back after ack_wait", async () => {
    // CPU-bound and never yielding, attempt 1 keeps its event loop from heartbeating for
    // longer than ack_wait: the message may have gone to another worker meanwhile.
    const stalling = implementProbeService({
      run: async (request, ctx) => {
        if (ctx.attempt > 1) return { label: request.label, attempt: ctx.attempt, workerId: ctx.workerId };
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1.5 * topology.ackWaitMs);
        throw new Error(`${request.label} failed after stalling`);
      },
    });
    const wnc = await connect({ servers: nats.url });
    const spy = await connect({ servers: nats.url });
    try {
      const sentFor = spyOnAcks(spy);
      await spy.flush();
      const outcomes: { taskId: string; outcome: string }[] = [];
      await startWorker("starved", {
        nats: wnc,
        concurrency: 1,
        services: [stalling],
        onEvent: (event) => {
          if (event.type === "attempt") outcomes.push({ taskId: event.taskId, outcome: event.outcome });
        },
      });
      const task = await client.submitTask(run, { label: "stalled" });
      expect(await task.result()).toMatchObject({ attempt: 2, workerId: "starved" });
      const { deliverySequence, errorHistory } = await task.status();
      expect(errorHistory.map((e) => e.message)).toEqual(["stalled failed after stalling"]);
      await wnc.flush();
      await spy.flush();
      // Recorded as a retry, as any failed attempt, but not nak'ed: it was redelivered on its own.
      expect(outcomes.filter((o) => o.taskId === task.id).map((o) => o.outcome)).toEqual(["retrying", "succeeded"]);
      expect(sentFor(Number(deliverySequence)).filter((sent) => sent !== "+WPI")).toEqual(["+ACK"]);
    } finally {
      await Promise.all(workers.splice(0).map((w) => w.close()));
      await wnc.close();
      await spy.close();
    }
  });

  it("one idempotency key is one task through two gateways, before and after it ran", async () => {
    const gateways: Gateway[] = [];
    const connections: NatsConnection[] = [];
    const clients: TaskwireClient[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const nc = await connect({ servers: nats.url });
        connections.push(nc);
        const backend = await createNatsTaskBackend({ nc, registry: createTaskRegistry([probeService]), topology });
        const gateway = await createGateway({ backend, typeRegistry: registryOf([probeService]) });
        gateways.push(gateway);
        clients.push(await createClient({ gateway: gateway.url }));
      }
      const [a, b] = clients as [TaskwireClient, TaskwireClient];
      const first = await a.submitTask(run, { label: "keyed" }, { idempotencyKey: "order-42" });
      const second = await b.submitTask(run, { label: "keyed" }, { idempotencyKey: "order-42" });
      expect(first.duplicate).toBe(false);
      expect(second).toMatchObject({ id: first.id, duplicate: true });
      await startWorker();
      await first.result();
      const after = await b.submitTask(run, { label: "keyed" }, { idempotencyKey: "order-42" });
      expect(after).toMatchObject({ id: first.id, duplicate: true });
      expect(of("keyed")).toHaveLength(1);
    } finally {
      for (const c of clients) await c.close();
      for (const g of gateways) await g.close();
      for (const nc of connections) await nc.close();
    }
  });

  it("a bounded queue refuses the submit past its bound with RESOURCE_EXHAUSTED", async () => {
    const bounded = await startNatsServer();
    const nc = await connect({ servers: bounded.url });
    try {
      const boundedClient = await createClient({ nats: nc, services: [probeService] });
      // Provisioned after the client, so its bound is the one in force (the last to provision wins).
      const backend = await createNatsTaskBackend({
        nc,
        registry: createTaskRegistry([probeService]),
        topology: { maxQueueLength: 3 },
      });
      for (let i = 0; i < 3; i++) await boundedClient.submitTask(run, { label: `fits-${i}` });
      const refused = await failure(boundedClient.submitTask(run, { label: "one too many" }));
      expect(refused?.code).toBe(Code.ResourceExhausted);
      expect(refused?.message).toMatch(/the queue is full/);
      expect((await boundedClient.queues.getQueue("probe")).maxQueued).toBe(3n);
      await boundedClient.close();
      await backend.close();
    } finally {
      await nc.close();
      await bounded.stop();
    }
  });

  it("a delivery whose worker died before starting it is not counted; a redelivery records its start before its handler", async () => {
    // The consumers exist once a worker has started; then none is left.
    await startWorker("provisioner");
    await Promise.all(workers.splice(0).map((w) => w.close()));
    const twice = await client.submitTask(
      run,
      { label: "unstarted-twice", sleepMs: 2000 },
      { retry: { maxAttempts: 2 } },
    );
    const single = await client.submitTask(
      run,
      { label: "unstarted-single", sleepMs: 2000 },
      { retry: { maxAttempts: 1 } },
    );
    const nc = await connect({ servers: nats.url });
    try {
      // What a worker killed with tasks pulled ahead leaves: deliveries never acked nor started.
      const consumer = await jetstream(nc).consumers.get(
        subjects.streamName("probe"),
        subjects.consumerName("probe", "normal"),
      );
      for (const delivery of [1, 2]) {
        const pulled = new Map<string, number>();
        // The second round waits for the redeliveries, one ack_wait after the first.
        while (!(pulled.has(twice.id) && pulled.has(single.id))) {
          const msg = await consumer.next({ expires: 5_000 });
          if (!msg) throw new Error(`delivery ${delivery} of the two tasks did not come`);
          pulled.set(decodeMessage(WorkItemSchema, msg.data).taskId, msg.info.deliveryCount);
        }
        expect([pulled.get(twice.id), pulled.get(single.id)]).toEqual([delivery, delivery]);
      }
    } finally {
      await nc.close();
    }
    await startWorker("after-deaths", startRecordsOnly);
    await poll(async () => (of("unstarted-twice").length + of("unstarted-single").length === 2 ? true : undefined));
    const running = await Promise.all([twice.status(), single.status()]);
    expect(running.map((s) => [s.state, s.attempt])).toEqual([
      [TaskState.RUNNING, 2], // the first delivery is presumed started
      [TaskState.RUNNING, 1], // a single attempt records its start: none was presumed
    ]);
    // Counted by deliveries, both would have ended FAILED ("gave up"): the third is above either policy.
    expect([(await twice.result()).attempt, (await single.result()).attempt]).toEqual([2, 1]);
    expect([of("unstarted-twice").length, of("unstarted-single").length]).toEqual([1, 1]);
  });

  it("a redelivery records its start before its handler, even as attempt 1 after a give-back", async () => {
    const leaving = await startWorker("leaving-early", leavesSoon);
    const occupier = await client.submitTask(run, { label: "occupier", sleepMs: 1000 });
    const ahead = await client.submitTask(run, { label: "pulled-ahead", sleepMs: 2000 });
    await poll(async () => (of("occupier").length > 0 ? true : undefined));
    // Both delivered to it: one running, one pulled ahead and waiting for the slot.
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      const name = [subjects.streamName("probe"), subjects.consumerName("probe", "normal")] as const;
      await poll(async () => ((await jsm.consumers.info(...name)).num_ack_pending === 2 ? true : undefined));
    } finally {
      await nc.close();
    }
    await leaving.close(); // gives back the task it pulled ahead: its record says 0 attempts spent
    expect(of("pulled-ahead")).toEqual([]);
    await startWorker("recorder", startRecordsOnly);
    await poll(async () => (of("pulled-ahead").length > 0 ? true : undefined));
    const running = await ahead.status();
    expect([running.state, running.attempt, running.workerId]).toEqual([TaskState.RUNNING, 1, "recorder"]);
    expect((await ahead.result()).attempt).toBe(1);
    expect((await occupier.result()).attempt).toBe(1);
  });

  it("a worker's shutdown spends no attempt: tasks it gives back, unstarted or interrupted, run again as attempt 1", async () => {
    const leaving = await startWorker("leaving", leavesSoon);
    const once = { retry: { maxAttempts: 1 } };
    const tasks = await Promise.all(
      ["given-back-1", "given-back-2", "given-back-3"].map((label) =>
        client.submitTask(run, { label, sleepMs: 1000 }, once),
      ),
    );
    await poll(async () => (of("given-back-1").length > 0 ? true : undefined));
    await leaving.close();
    expect(of("given-back-1").map((a) => a.attempt)).toEqual([1]);

    await startWorker("staying");
    const results = await Promise.all(tasks.map((task) => task.result()));
    // With max_attempts 1, a counted give-back would have failed the task instead.
    expect(results.map((r) => [r.label, r.attempt, r.workerId])).toEqual([
      ["given-back-1", 1, "staying"],
      ["given-back-2", 1, "staying"],
      ["given-back-3", 1, "staying"],
    ]);
    const statuses = await Promise.all(tasks.map((task) => task.status()));
    // The interrupted one and the one pulled ahead were given back; the third may never have left the stream.
    expect(statuses[0]?.returnedDeliveries).toBe(1);
    expect(statuses[1]?.returnedDeliveries).toBe(1);
    expect(statuses.map((status) => status.attempt)).toEqual([1, 1, 1]);
  });

  it("a task whose status key an operator purged is cancelled, and runs, over the purge marker", async () => {
    const nc = await connect({ servers: nats.url });
    try {
      const kv = await new Kvm(nc).open(subjects.statusBucket);
      // No worker yet: both wait in the queue while their keys are purged (a marker, no record).
      const cancelled = await client.submitTask(run, { label: "purged-cancelled" }, { idempotencyKey: "purged-1" });
      const runs = await client.submitTask(run, { label: "purged-runs" }, { idempotencyKey: "purged-2" });
      await kv.purge(cancelled.id);
      await kv.purge(runs.id);
      // Each first write would be a create, which the marker refuses: the writes go over it.
      expect((await cancelled.cancel()).state).toBe(TaskState.CANCELLED);
      await startWorker();
      expect((await runs.result()).label).toBe("purged-runs");
      expect((await client.getTask(cancelled.id)).state).toBe(TaskState.CANCELLED);
      expect(of("purged-cancelled")).toEqual([]);
    } finally {
      await nc.close();
    }
  });

  it("a result too large to store fails the task at once, saying so, instead of running it again", async () => {
    const ran: string[] = [];
    await startWorker("big-results", {
      // Past the kept size a worker refuses the result itself (retention.test.ts): here the server does.
      topology: { ...topology, maxResultBytes: 2_000_000 },
      services: [
        implementProbeService({
          async run({ label }) {
            ran.push(label);
            return { label: "x".repeat(1_100_000) }; // over the server's 1 MiB max_payload
          },
        }),
      ],
    });
    const task = await client.submitTask(run, { label: "huge" });
    const error = await failure(task.result());
    expect(error?.code).toBe(Code.ResourceExhausted);
    expect(error?.message).toMatch(/its result is too large to store/);
    expect((await client.getTask(task.id)).state).toBe(TaskState.FAILED);
    expect(ran).toEqual(["huge"]);
  });
});
