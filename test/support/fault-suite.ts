import { setTimeout as sleep } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import type { TaskwireClient } from "../../sdk/client/create-client.ts";
import { TaskError } from "../../sdk/core/task-error.ts";
import type { Supervisor } from "../../worker-runtime/create-supervisor.ts";
import { accountFaults, describeAccount, type FaultAccount, submitUntilAcknowledged } from "./fault-accounting.ts";
import type { NatsServer } from "./nats-server.ts";
import { poll } from "./poll.ts";

/** What one fault run did and found. */
export interface FaultRun {
  readonly acknowledged: number;
  readonly workerKills: number;
  readonly natsRestarts: number;
  readonly account: FaultAccount;
  /** One line for the test's output. */
  readonly summary: string;
}

/**
 * Submits `tasks` hasher tasks with unique keys while the supervisor's worker
 * processes are killed with SIGKILL (every 250-500 ms) and nats-server is
 * killed with SIGKILL and restarted (every 1.5-2.5 s), then accounts for every
 * acknowledged task against the executions the workers logged one id per line
 * in `logs` (test/fixtures/fault-worker.ts and its ports, one log per pool or all in one).
 */
export async function runFaultSuite(options: {
  readonly nats: NatsServer;
  readonly supervisor: Supervisor;
  readonly client: TaskwireClient;
  readonly tasks: number;
  readonly logs: readonly string[];
}): Promise<FaultRun> {
  const { nats, supervisor, client, tasks } = options;
  let faulting = true;
  let workerKills = 0;
  let natsRestarts = 0;
  const killWorkers = (async () => {
    while (faulting) {
      await sleep(250 + Math.random() * 250);
      const live = [...supervisor.processes.values()].filter((p) => p.exitCode === null && p.signalCode === null);
      const victim = live[Math.floor(Math.random() * live.length)];
      if (victim?.kill("SIGKILL")) workerKills++;
    }
  })();
  const restartNats = (async () => {
    while (faulting) {
      await sleep(1500 + Math.random() * 1000);
      if (!faulting) break;
      await nats.kill("SIGKILL");
      await sleep(200);
      await nats.restart();
      natsRestarts++;
    }
  })();

  // Each task has a unique key, so a submit that failed in an unknown state is
  // retried safely until it is acknowledged (accepted, or reported a duplicate).
  const acknowledged = new Map<string, string>(); // task id -> key
  let submitRetries = 0;
  const submitOne = async (i: number) => {
    const key = `fault-${i}`;
    const { id, retries } = await submitUntilAcknowledged(
      client,
      key,
      (error) => error instanceof TaskError && error.code === Code.Unavailable,
      50,
    );
    acknowledged.set(id, key);
    submitRetries += retries;
  };
  // The faults must strike while tasks are still being submitted, however fast the
  // first ones go: the second half waits until each kind has struck once.
  const faultsStruck = poll(async () => (natsRestarts > 0 && workerKills > 0 ? true : undefined), 30_000);
  let next = 0;
  const lanes = Array.from({ length: 50 }, async () => {
    while (next < tasks) {
      const i = next++;
      if (i >= tasks / 2) await faultsStruck;
      await submitOne(i);
    }
  });
  try {
    await Promise.all(lanes);
  } finally {
    faulting = false;
    await Promise.all([killWorkers, restartNats]);
  }
  const account = await accountFaults(new Set(acknowledged.keys()), (id) => client.getTask(id), options.logs);
  const summary =
    `${tasks} tasks, ${acknowledged.size} acknowledged (${submitRetries} submit retries), ` +
    `${workerKills} worker kills, ${natsRestarts} nats-server kills; ${describeAccount(account)}`;
  return { acknowledged: acknowledged.size, workerKills, natsRestarts, account, summary };
}
