/**
 * The gateway process of the Taskwire gateway runs: serves the NATS backend on
 * a random loopback port and reports its URL. Argument: the NATS URL.
 * TASKWIRE_RETENTION (RetentionSettings as JSON), when set, is the deployment's.
 */
import { connect } from "@nats-io/transport-node";
import { createNatsQueueBackend, createNatsTaskBackend, createTaskRegistry } from "taskwire";
import { createGateway } from "taskwire/server";
import { echoService } from "../gen/bench/v1/bench_taskwire.ts";

const nc = await connect({ servers: process.argv[2] });
const retention = process.env.TASKWIRE_RETENTION ? (JSON.parse(process.env.TASKWIRE_RETENTION) as object) : {};
const tasks = await createNatsTaskBackend({
  nc,
  registry: createTaskRegistry([echoService]),
  topology: retention,
});
const gateway = await createGateway({ backend: tasks, queues: await createNatsQueueBackend({ nc, tasks }) });
process.once("SIGTERM", () => {
  void gateway.close().then(() => nc.drain().then(() => process.exit(0)));
});
process.send?.({ type: "ready", url: gateway.url });
