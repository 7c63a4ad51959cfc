import assert from "node:assert/strict";
import { test } from "node:test";
import type { TaskError } from "taskwire";
import { createTestEnvironment, runTaskHandler } from "taskwire/testing";
import { createGreeterServiceClient } from "../gen/greeter/v1/greeter_taskwire.ts";
import { greeter } from "../src/worker.ts";

test("greets by name (the handler alone, in this process)", async () => {
  const { result, progress } = await runTaskHandler(greeter, "greet", { name: "Ada" });
  assert.equal(result.message, "Hello, Ada!");
  assert.deepEqual(progress, [{ fraction: 0.5, message: "thinking of a greeting" }]);
});

test("refuses a long name for good", async () => {
  await assert.rejects(runTaskHandler(greeter, "greet", { name: "x".repeat(101) }), (error: TaskError) => {
    assert.equal(error.retryable, false);
    return true;
  });
});

test("greets through a real worker and nats-server", async () => {
  await using env = await createTestEnvironment({ services: [greeter] });
  const task = await createGreeterServiceClient(env.client).greet({ name: "Grace" });
  assert.equal((await task.result()).message, "Hello, Grace!");
});
