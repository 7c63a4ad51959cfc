/**
 * The gateway process of the Taskwire gateway runs: serves the NATS backend on
 * a random loopback port and reports its URL. Argument: the NATS URL.
 */
import { connect } from "@nats-io/transport-node";
import { createNatsTaskBackend, createTaskRegistry } from "taskwire";
import { createGateway } from "taskwire/server";
import { echoService } from "../gen/bench/v1/bench_taskwire.ts";

const nc = await connect({ servers: process.argv[2] });
const backend = await createNatsTaskBackend({ nc, registry: createTaskRegistry([echoService]) });
const gateway = await createGateway({ backend });
process.once("SIGTERM", () => {
  void gateway.close().then(() => nc.drain().then(() => process.exit(0)));
});
process.send?.({ type: "ready", url: gateway.url });
