// What gateway authentication costs per call: GetTask through the SDK's gateway
// client (binary Connect over HTTP/2, the gateway's fast path) against an open
// gateway and one with `auth` (an API key), served by an in-memory backend so
// that only the gateway's own work is measured. Rounds alternate; medians of
// calls per second and of the gateway's CPU per call.
//
//   npm run bench:auth [-- --rounds 7 --calls 20000]
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { TaskSchema } from "../gen/taskwire/v1/task_pb.ts";
import { createClient } from "../sdk/client/create-client.ts";
import { createGateway, type Gateway } from "../server/create-gateway.ts";
import { apiKeyHash } from "../server/gateway-auth.ts";
import { FakeTaskBackend } from "../server/test-support/fake-task-backend.ts";

const { values } = parseArgs({
  options: { rounds: { type: "string", default: "7" }, calls: { type: "string", default: "20000" } },
});
const rounds = Number(values.rounds);
const calls = Number(values.calls);
const concurrency = 64;
const key = "tw_bench_0123456789abcdefghijklmnopqrstuvwxyz0123";

const backend = new FakeTaskBackend();
// A task under an id of the real form: authorization reads the worker type from it.
const taskId = "hasher.01JEXAMPLE0000000000000000";
const { taskId: stored } = await backend.submit(create(TaskSchema, { workerType: "hasher", method: "Digest" }));
backend.tasks.set(taskId, backend.tasks.get(stored) as NonNullable<ReturnType<typeof backend.tasks.get>>);
const gateways: Record<string, Gateway> = {
  open: await createGateway({ backend }),
  // Any interceptor takes the fast path through connect's interceptor chain: its share.
  "no-op interceptor": await createGateway({ backend, interceptors: [(next) => (request) => next(request)] }),
  "API key": await createGateway({
    backend,
    auth: { apiKeys: [{ name: "bench", sha256: apiKeyHash(key), permissions: ["read:*"] }] },
    auditLog: () => {},
  }),
};

/** One round: calls/s and the process' CPU µs per call (client and gateway share it). */
async function round(gateway: Gateway, token?: string) {
  const client = await createClient({ gateway: gateway.url, ...(token ? { token } : {}) });
  await client.getTask(taskId); // the session is open before the clock starts
  const cpu = process.cpuUsage();
  const start = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < calls) await client.getTask(taskId);
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  await client.close();
  return { perSecond: calls / seconds, cpuMicros: (used.user + used.system) / calls };
}

const median = (values: number[]) => values.toSorted((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const results: Record<string, { perSecond: number[]; cpuMicros: number[] }> = {};
for (let i = 0; i < rounds; i++) {
  for (const [name, gateway] of Object.entries(gateways)) {
    const { perSecond, cpuMicros } = await round(gateway, name === "open" ? undefined : key);
    results[name] ??= { perSecond: [], cpuMicros: [] };
    results[name].perSecond.push(perSecond);
    results[name].cpuMicros.push(cpuMicros);
  }
}
console.log(`GetTask, ${calls} calls × ${rounds} rounds, ${concurrency} at once, medians:`);
for (const [name, r] of Object.entries(results)) {
  console.log(
    `  ${name.padEnd(17)} ${Math.round(median(r.perSecond)).toLocaleString("en")} calls/s, ${median(r.cpuMicros).toFixed(1)} µs CPU per call`,
  );
}
await Promise.all(Object.values(gateways).map((g) => g.close()));
