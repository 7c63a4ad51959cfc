import { execFile, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { create, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { reportService } from "../../examples/gen/example/v1/report_taskwire.ts";
import { ServerReflection, ServerReflectionRequestSchema } from "../../gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { exampleDigest as digest, startDeployment, type TestDeployment } from "../support/deployment.ts";
import { grpcurlBinary, repoRoot } from "../support/tools.ts";

const services = [hashService, reportService];
const run = promisify(execFile);

describe("grpcurl against the gateway, with no proto files at hand", () => {
  let deployment: TestDeployment;
  let address: string;

  /** Runs grpcurl; resolves with its exit code and output whether or not it failed. */
  async function grpcurl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run(grpcurlBinary(), ["-plaintext", ...args], { timeout: 30_000 });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const { code, stdout, stderr } = error as { code: number; stdout: string; stderr: string };
      return { code, stdout, stderr };
    }
  }

  /**
   * Starts grpcurl without waiting for it: `firstMessage` resolves once it has printed
   * a whole message (a closing brace alone on its line) and rejects if it exits first;
   * `exited` gives its exit code and whole output (it is killed after 30 s).
   */
  function grpcurlStream(...args: string[]) {
    const child = spawn(grpcurlBinary(), ["-plaintext", ...args], { timeout: 30_000 });
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const firstMessage = new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
        if (/^\}$/m.test(stdout)) resolve();
      });
      child.once("close", (code) => reject(new Error(`grpcurl exited (${code}) before a message:\n${stderr}`)));
    });
    const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (code) => resolve({ code, stdout, stderr }));
    });
    return { firstMessage, exited };
  }

  /** A server stream prints one JSON object per message, separated by a newline. */
  const parseMessages = (stdout: string): Record<string, unknown>[] =>
    stdout
      .trim()
      .split(/\n(?=\{)/)
      .map((text) => JSON.parse(text));

  /** Calls a method with a JSON request and returns the parsed JSON response(s). */
  async function call(method: string, request: object): Promise<Record<string, unknown>[]> {
    const { code, stdout, stderr } = await grpcurl("-d", JSON.stringify(request), address, method);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    return parseMessages(stdout);
  }

  beforeAll(async () => {
    deployment = await startDeployment(services, [
      { name: "hasher", module: "examples/hash/hash-worker.ts", processes: 1 },
      { name: "reports", module: "examples/report/report-worker.ts", processes: 1 },
    ]);
    address = `127.0.0.1:${deployment.gateway.port}`;
  }, 60_000);

  afterAll(() => deployment?.stop());

  it("lists every service through reflection", async () => {
    const { code, stdout } = await grpcurl(address, "list");
    expect(code).toBe(0);
    expect(stdout.trim().split("\n")).toEqual([
      "example.v1.HashService",
      "example.v1.ReportService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "taskwire.v1.GatewayService",
      "taskwire.v1.QueueService",
      "taskwire.v1.ScheduleService",
      "taskwire.v1.TaskService",
      "taskwire.v1.WorkerService",
    ]);
  });

  it("creates, previews, lists and deletes a schedule in JSON, its payload an Any by type", async () => {
    const schedule = {
      workerType: "hasher",
      scheduleId: "nightly-digest",
      spec: { cron: "30 2 * * *", timeZone: "Europe/Paris" },
      task: { method: "Digest", payload: { "@type": "type.googleapis.com/example.v1.DigestRequest", text: "night" } },
      overlap: "OVERLAP_POLICY_BUFFER_ONE",
    };
    const [created] = await call("taskwire.v1.ScheduleService/CreateSchedule", { schedule });
    expect(created?.schedule).toMatchObject({ schedule, generation: "1" });
    const [preview] = await call("taskwire.v1.ScheduleService/PreviewSchedule", {
      workerType: "hasher",
      scheduleId: "nightly-digest",
      count: 2,
    });
    const times = (preview?.times ?? []) as string[];
    expect(times).toHaveLength(2);
    // 02:30 in Paris is 00:30 or 01:30 UTC, depending on the season.
    for (const time of times) expect(time).toMatch(/T0[01]:30:00Z$/);
    expect((created?.schedule as { nextTime?: string } | undefined)?.nextTime).toBe(times[0]);
    const [listed] = await call("taskwire.v1.ScheduleService/ListSchedules", {});
    expect(listed?.schedules).toHaveLength(1);
    await call("taskwire.v1.ScheduleService/DeleteSchedule", { workerType: "hasher", scheduleId: "nightly-digest" });
    const missing = await grpcurl(
      ...["-d", JSON.stringify({ workerType: "hasher", scheduleId: "nightly-digest" })],
      ...[address, "taskwire.v1.ScheduleService/GetSchedule"],
    );
    expect(missing.stderr).toMatch(/Code: NotFound\n.*schedule hasher\.nightly-digest not found/);
  });

  it("reads the live workers, the queues and the caller, as the console does", async () => {
    const [workers] = await call("taskwire.v1.WorkerService/ListWorkers", {});
    const instances = (workers?.workers ?? []) as { types: { workerType: string }[]; pid: number }[];
    expect(instances.flatMap((w) => w.types.map((t) => t.workerType)).sort()).toEqual(["hasher", "reports"]);
    expect(instances.every((w) => w.pid > 0)).toBe(true);
    const [queues] = await call("taskwire.v1.QueueService/ListQueues", {});
    const types = ((queues?.queues ?? []) as { workerType: string }[]).map((q) => q.workerType);
    expect(types).toEqual(["hasher", "reports"]);
    const [caller] = await call("taskwire.v1.GatewayService/WhoAmI", {});
    expect(caller).toEqual({ name: "anonymous", via: "open", permissions: ["admin:*"] });
  });

  it("describes a user task service, its messages and their options", async () => {
    const service = await grpcurl(address, "describe", "example.v1.HashService");
    expect(service.code).toBe(0);
    expect(service.stdout).toContain("rpc Digest ( .example.v1.DigestRequest ) returns ( .example.v1.DigestResponse )");
    expect(service.stdout).toContain('option (.taskwire.v1.worker) = { type: "hasher", concurrency: 8 }');
    const message = await grpcurl(address, "describe", "example.v1.DigestRequest");
    expect(message.stdout).toContain("string text = 1 [(.taskwire.v1.field) = { required: true }];");
    const method = await grpcurl(address, "describe", "taskwire.v1.TaskService.WatchTask");
    expect(method.stdout).toContain("returns ( stream .taskwire.v1.WatchTaskResponse )");
    // The proto comments, which generated code carries beside the descriptors.
    expect(service.stdout).toContain("// A quick CPU task: hash some text, many rounds over.\nservice HashService {");
    expect(service.stdout).toMatch(/\/\/ Computes an iterated digest of the text\.\n\s*rpc Digest /);
    expect(message.stdout).toMatch(/\/\/ The text to hash\.\n\s*string text = 1/);
    const protocol = await grpcurl(address, "describe", "taskwire.v1.TaskService");
    expect(protocol.stdout).toContain("// Submits tasks and answers questions about them. Served by the gateway over");
    expect(protocol.stdout).toMatch(
      /\/\/ Reads a task's current status\. NOT_FOUND for an unknown id\.\n\s*rpc GetTask /,
    );
    const task = await grpcurl(address, "describe", "taskwire.v1.Task");
    expect(task.stdout).toMatch(/\/\/ of the task service, e\.g\. "thumbnailer"\.\n\s*string worker_type = 1;/);
    const unknown = await grpcurl(address, "describe", "example.v1.Nothing");
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain("Symbol not found: example.v1.Nothing");
  });

  it("submits a task with an Any payload, gets it and watches it to the end", async () => {
    // The queue is paused until the watch has printed the task PENDING: however slow the
    // machine, the watch starts before the task does, and sees it run.
    await call("taskwire.v1.QueueService/PauseQueue", { workerType: "reports" });
    let watch: ReturnType<typeof grpcurlStream> | undefined;
    try {
      const [submitted] = await call("taskwire.v1.TaskService/Submit", {
        task: {
          workerType: "reports",
          method: "Generate",
          payload: {
            "@type": "type.googleapis.com/example.v1.GenerateRequest",
            title: "t",
            sections: 4,
            sectionMs: 300,
          },
        },
      });
      const taskId = submitted?.taskId as string;
      expect(taskId).toMatch(/^reports\./);

      const [got] = await call("taskwire.v1.TaskService/GetTask", { taskId });
      expect(got?.status).toMatchObject({
        taskId,
        workerType: "reports",
        method: "Generate",
        state: "TASK_STATE_PENDING",
      });

      watch = grpcurlStream("-d", JSON.stringify({ taskId }), address, "taskwire.v1.TaskService/WatchTask");
      await watch.firstMessage; // grpcurl prints each message as it comes
    } finally {
      await call("taskwire.v1.QueueService/ResumeQueue", { workerType: "reports" });
    }
    const { code, stdout, stderr } = await watch.exited;
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const watched = parseMessages(stdout);
    // The task was waiting when the watch started: then it ran, with progress, to the end.
    const statuses = watched.map((m) => m.status as { state: string; progress?: { message: string } });
    expect(statuses[0]?.state).toBe("TASK_STATE_PENDING");
    expect(statuses.map((s) => s.state).filter((state, i, all) => state !== all[i - 1])).toEqual([
      "TASK_STATE_PENDING",
      "TASK_STATE_RUNNING",
      "TASK_STATE_SUCCEEDED",
    ]);
    expect(
      statuses.some((s) => s.progress?.message === "section 1 of 4" || s.progress?.message === "section 2 of 4"),
    ).toBe(true);
    const last = watched.at(-1)?.status as {
      state: string;
      result: { "@type": string; body: string; sections: number };
    };
    expect(last.state).toBe("TASK_STATE_SUCCEEDED");
    expect(last.result["@type"]).toBe("type.googleapis.com/example.v1.GenerateResponse");
    expect(last.result.sections).toBe(4);
    expect(last.result.body.split("\n")[3]).toMatch(/^t: section 4 of 4 /);
  });

  it("calls a typed route and gets the typed result, with the task id in a header", async () => {
    const { code, stdout } = await grpcurl(
      "-v",
      "-d",
      JSON.stringify({ text: "hello", rounds: 3 }),
      address,
      "example.v1.HashService/Digest",
    );
    expect(code).toBe(0);
    expect(stdout).toMatch(/taskwire-task-id: hasher\.\w+/);
    const contents = stdout.slice(stdout.indexOf("Response contents:"));
    const response = JSON.parse(contents.slice(contents.indexOf("{"), contents.indexOf("\n}") + 2));
    expect(response).toEqual({ hex: digest("hello", 3), rounds: 3 });
  });

  it("fails a typed call with the task's own error, and shares one task between calls with one idempotency key", async () => {
    const failed = await grpcurl(
      "-d",
      JSON.stringify({ text: "x", algorithm: "md5" }),
      address,
      "example.v1.HashService/Digest",
    );
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toContain('unsupported algorithm "md5": use sha256 or sha512');

    const keyed = () =>
      grpcurl(
        "-v",
        "-H",
        "taskwire-idempotency-key: grpcurl-once",
        "-d",
        JSON.stringify({ text: "once" }),
        address,
        "example.v1.HashService/Digest",
      );
    const taskIdOf = (stdout: string) => /taskwire-task-id: (\S+)/.exec(stdout)?.[1];
    const first = await keyed();
    const second = await keyed();
    expect(first.code).toBe(0);
    expect(second.code).toBe(0);
    expect(taskIdOf(first.stdout)).toBeDefined();
    expect(taskIdOf(second.stdout)).toBe(taskIdOf(first.stdout));
    expect(second.stdout).toContain(`"hex": "${digest("once", 1)}"`);
  });

  it("refuses a wrong payload with INVALID_ARGUMENT and a readable message", async () => {
    const typed = await grpcurl("-d", JSON.stringify({ rounds: 3 }), address, "example.v1.HashService/Digest");
    expect(typed.code).not.toBe(0);
    expect(typed.stderr).toContain("Code: InvalidArgument");
    expect(typed.stderr).toContain("example.v1.DigestRequest is missing required field: text");

    const mismatched = await grpcurl(
      "-d",
      JSON.stringify({
        task: {
          workerType: "hasher",
          method: "Digest",
          payload: { "@type": "type.googleapis.com/example.v1.GenerateRequest", title: "t", sections: 1 },
        },
      }),
      address,
      "taskwire.v1.TaskService/Submit",
    );
    expect(mismatched.stderr).toContain("Code: InvalidArgument");
    expect(mismatched.stderr).toContain(
      "hasher/Digest takes a payload of type example.v1.DigestRequest, got one of type example.v1.GenerateRequest",
    );

    const unknown = await grpcurl(
      "-d",
      JSON.stringify({ task: { workerType: "nobody", method: "Digest" } }),
      address,
      "taskwire.v1.TaskService/Submit",
    );
    expect(unknown.stderr).toContain("Code: NotFound");
    expect(unknown.stderr).toContain('unknown worker type "nobody" (known: hasher, reports)');
  });

  it("answers a typed call past its deadline with DEADLINE_EXCEEDED and the task id, and the task goes on", async () => {
    const { code, stdout, stderr } = await grpcurl(
      "-v",
      "-max-time",
      "0.5",
      "-d",
      JSON.stringify({ title: "slow", sections: 2, sectionMs: 500 }),
      address,
      "example.v1.ReportService/Generate",
    );
    expect(code).not.toBe(0);
    expect(stderr).toContain("Code: DeadlineExceeded");
    const taskId = /task (reports\.\w+) has not finished by the call's deadline/.exec(stderr)?.[1];
    expect(taskId).toBeDefined();
    expect(stdout).toContain(`taskwire-task-id: ${taskId}`);

    const [waited] = await call("taskwire.v1.TaskService/WaitTask", { taskId });
    expect(waited?.status).toMatchObject({ taskId, state: "TASK_STATE_SUCCEEDED" });
  });

  it("serves reflection v1alpha too, for older tools", async () => {
    const client = createClient(ServerReflection, createGrpcTransport({ baseUrl: deployment.gateway.url }));
    const requests = [
      create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } }),
      create(ServerReflectionRequestSchema, {
        messageRequest: { case: "fileContainingSymbol", value: "example.v1.HashService.Digest" },
      }),
      create(ServerReflectionRequestSchema, {
        messageRequest: { case: "fileByFilename", value: "no/such.proto" },
      }),
      create(ServerReflectionRequestSchema, {
        messageRequest: { case: "allExtensionNumbersOfType", value: "google.protobuf.ServiceOptions" },
      }),
      create(ServerReflectionRequestSchema, {
        messageRequest: {
          case: "fileContainingExtension",
          value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 51770 },
        },
      }),
    ];
    async function* send() {
      yield* requests;
    }
    const responses = [];
    for await (const response of client.serverReflectionInfo(send())) responses.push(response);
    expect(responses).toHaveLength(5);
    const [list, file, missing, numbers, extension] = responses.map((r) => r.messageResponse);
    expect(list?.case === "listServicesResponse" && list.value.service.map((s) => s.name)).toContain(
      "example.v1.HashService",
    );
    // The file of the symbol first, then its imports.
    const names =
      file?.case === "fileDescriptorResponse"
        ? file.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name)
        : [];
    expect(names[0]).toBe("example/v1/hash.proto");
    expect(names).toContain("taskwire/v1/options.proto");
    expect(names).toContain("google/protobuf/descriptor.proto");
    expect(missing).toMatchObject({ case: "errorResponse", value: { errorCode: 5 } });
    // (taskwire.v1.worker) extends ServiceOptions, (taskwire.v1.task) MethodOptions.
    expect(numbers).toMatchObject({
      case: "allExtensionNumbersResponse",
      value: { baseTypeName: "google.protobuf.ServiceOptions", extensionNumber: [51770] },
    });
    const extensionFile =
      extension?.case === "fileDescriptorResponse"
        ? fromBinary(FileDescriptorProtoSchema, extension.value.fileDescriptorProto[0] as Uint8Array).name
        : undefined;
    expect(extensionFile).toBe("taskwire/v1/options.proto");
  });

  it("runs every command block of docs/clients.md marked `sh tested`", async () => {
    const doc = await readFile(`${repoRoot}/docs/clients.md`, "utf8");
    const blocks = [...doc.matchAll(/^```sh tested\n([\s\S]*?)^```$/gm)].map((match) => match[1] as string);
    expect(blocks.length).toBeGreaterThanOrEqual(5);
    let output = "";
    for (const block of blocks) {
      const script = `set -euo pipefail\n${block.replaceAll("127.0.0.1:8080", address)}`;
      const { stdout } = await run("bash", ["-c", script], { cwd: repoRoot, timeout: 30_000 }).catch((error) => {
        throw new Error(`a block of docs/clients.md failed:\n${block}\n${error.stderr ?? error.message}`);
      });
      expect(stdout).not.toBe("");
      output += stdout;
    }
    expect(output).toContain(digest("hello", 3));
    expect(output).toContain('"state": "TASK_STATE_SUCCEEDED"');
    expect(output).toMatch(/"code":"deadline_exceeded","message":"task reports\.\w+ has not finished/);
  }, 60_000);
});
