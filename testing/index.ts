/**
 * Testing and local development: run handlers without writing NATS plumbing.
 *
 * - {@link runTaskHandler}: one handler, in this process, with no NATS at all;
 * - {@link createTestEnvironment}: the handlers in a real worker against a real
 *   nats-server of their own, and a client to submit to them;
 * - {@link findNatsServer} and {@link startNatsServer}: the nats-server `taskwire dev` runs.
 *
 * ```ts
 * import { test } from "node:test";
 * import assert from "node:assert/strict";
 * import { runTaskHandler } from "taskwire/testing";
 * import { greeter } from "../src/worker.ts";
 *
 * test("greets by name", async () => {
 *   const { result } = await runTaskHandler(greeter, "greet", { name: "Ada" });
 *   assert.equal(result.message, "Hello, Ada!");
 * });
 * ```
 *
 * @module taskwire/testing
 */

export type { HandlerRun, RunTaskHandlerOptions } from "../worker-runtime/index.ts";
export { runTaskHandler } from "../worker-runtime/index.ts";
export type { FindNatsServerOptions } from "./nats-server-binary.ts";
export { findNatsServer, howToInstall, pinnedNatsServer } from "./nats-server-binary.ts";
export type { ManagedNatsCluster, ManagedNatsServer, StartNatsServerOptions } from "./start-nats-server.ts";
export { startNatsCluster, startNatsServer } from "./start-nats-server.ts";
export type { TestEnvironment, TestEnvironmentOptions } from "./test-environment.ts";
export { createTestEnvironment } from "./test-environment.ts";
