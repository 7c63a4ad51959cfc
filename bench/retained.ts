/**
 * `npm run bench:retained`: the heap a producer keeps alive per task it waits
 * on, measured after full collections (`--expose-gc`), 5000 tasks at a time:
 * - a submit awaiting its PubAck (the nats-server is stopped with SIGSTOP, so
 *   none comes until it is resumed);
 * - a `result()` awaiting its outcome (no worker runs the tasks).
 * Whatever a waiting task holds is copied by each young-generation collection
 * while it waits: a thousand submits in flight make this the client's GC cost.
 */
import { createClient } from "taskwire";
import { startNatsServer } from "../test/support/nats-server.ts";
import { benchNatsServer } from "./deployment.ts";
import { createEchoServiceClient, echoService } from "./gen/bench/v1/bench_taskwire.ts";
import { payloadText } from "./target.ts";

const tasks = 5_000;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc (npm run bench:retained)");
const heapUsed = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
const perTask = (before: number, after: number) => `${((after - before) / tasks).toFixed(0)} B`;

const nats = await startNatsServer(benchNatsServer);
const client = await createClient({ nats: nats.url, services: [echoService] });
const echo = createEchoServiceClient(client);
for (let i = 0; i < 200; i++) await echo.echo({ text: payloadText }); // warm-up: compiled paths, pools
const held: unknown[] = new Array(tasks).fill(undefined);

process.kill(nats.pid, "SIGSTOP");
let before = heapUsed();
for (let i = 0; i < tasks; i++) held[i] = echo.echo({ text: payloadText });
await new Promise((resolve) => setTimeout(resolve, 100)); // their publishes leave
const submitting = perTask(before, heapUsed());
process.kill(nats.pid, "SIGCONT");
const handles = await Promise.all(held as ReturnType<typeof echo.echo>[]);

before = heapUsed();
for (let i = 0; i < tasks; i++) held[i] = handles[i]?.result();
const waiting = perTask(before, heapUsed());
for (const wait of held) (wait as Promise<unknown>).catch(() => {}); // they fail at close

console.log(
  `retained per task, ${tasks} at once: submit awaiting its PubAck ${submitting}; result() awaiting its outcome ${waiting}`,
);
await client.close();
await nats.stop();
