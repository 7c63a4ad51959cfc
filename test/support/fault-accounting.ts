import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { TaskState, type TaskStatus } from "../../gen/taskwire/v1/task_pb.ts";
import type { TaskwireClient } from "../../sdk/client/create-client.ts";
import { isTerminal, stateName } from "../../sdk/core/status.ts";

/** What a fault suite found: every list empty means nothing acknowledged was lost or run unexpectedly. */
export interface FaultAccount {
  /** Acknowledged tasks that never reached a terminal state. */
  readonly lost: string[];
  /** Tasks that ended other than SUCCEEDED, with their state, attempt and error. */
  readonly failed: string[];
  /** Executions of tasks whose submit was never acknowledged. */
  readonly neverAcknowledged: string[];
  /** Tasks SUCCEEDED without an execution logged. */
  readonly neverRan: string[];
  /** Tasks that ran more than once (at-least-once allows it), and the runs beyond the first. */
  readonly duplicated: number;
  readonly extraRuns: number;
  readonly highestAttempt: number;
}

/**
 * Waits (up to `timeoutMs`) for every acknowledged task to reach a terminal
 * state, reading each with `read` (failures are read again), then matches the
 * outcomes against the executions logged one id per line in `logs` (one file
 * per group of workers that log apart, such as one per language).
 */
export async function accountFaults(
  acknowledged: ReadonlySet<string>,
  read: (taskId: string) => Promise<TaskStatus>,
  logs: readonly string[],
  timeoutMs = 90_000,
): Promise<FaultAccount> {
  const final = new Map<string, TaskStatus>();
  const deadline = Date.now() + timeoutMs;
  while (final.size < acknowledged.size && Date.now() < deadline) {
    for (const id of acknowledged) {
      if (final.has(id)) continue;
      const status = await read(id).catch(() => undefined);
      if (status && isTerminal(status.state)) final.set(id, status);
    }
    if (final.size < acknowledged.size) await sleep(250);
  }
  const executions = new Map<string, number>();
  for (const log of logs) {
    for (const line of (await readFile(log, "utf8").catch(() => "")).split("\n")) {
      if (line) executions.set(line, (executions.get(line) ?? 0) + 1);
    }
  }
  const statuses = [...final.values()];
  return {
    lost: [...acknowledged].filter((id) => !final.has(id)),
    failed: statuses
      .filter((s) => s.state !== TaskState.SUCCEEDED)
      .map((s) => `${s.taskId}: ${stateName(s.state)} at attempt ${s.attempt}: ${s.error?.message}`),
    neverAcknowledged: [...executions.keys()].filter((id) => !acknowledged.has(id)),
    neverRan: statuses.filter((s) => s.state === TaskState.SUCCEEDED && !executions.has(s.taskId)).map((s) => s.taskId),
    duplicated: [...executions.values()].filter((n) => n > 1).length,
    extraRuns: [...executions.values()].reduce((sum, n) => sum + n - 1, 0),
    highestAttempt: Math.max(0, ...statuses.map((s) => s.attempt)),
  };
}

/** The account's one line for the test output: counts, as CI prints them. */
export function describeAccount(account: FaultAccount): string {
  const unexpected = account.failed.length + account.neverAcknowledged.length + account.neverRan.length;
  return (
    `lost ${account.lost.length}, unexpected ${unexpected}, duplicated executions ${account.duplicated} ` +
    `(${account.extraRuns} extra runs), highest attempt ${account.highestAttempt}`
  );
}

/** What must be empty, the first few of each: compare with {@link noShortfalls}. */
export function shortfalls(account: FaultAccount) {
  return {
    lost: account.lost.slice(0, 5),
    failed: account.failed.slice(0, 5),
    neverAcknowledged: account.neverAcknowledged,
    neverRan: account.neverRan,
  };
}

/** {@link shortfalls} of a run that lost nothing and ran nothing unexpected. */
export const noShortfalls = { lost: [], failed: [], neverAcknowledged: [], neverRan: [] };

/**
 * Submits the fault worker's task for `key` until it is acknowledged (accepted,
 * or reported a duplicate): a keyed submit that failed in an unknown state is
 * safe to send again. Failures `retryable` refuses are thrown. Resolves with
 * the task's id and the tries it took beyond the first.
 */
export async function submitUntilAcknowledged(
  client: TaskwireClient,
  key: string,
  retryable: (error: unknown) => boolean,
  pauseMs: number,
): Promise<{ id: string; retries: number }> {
  for (let retries = 0; ; retries++) {
    try {
      const handle = await client.submitTask(
        hashService.methods.digest,
        { text: key },
        // These suites check that no task is lost, so the retry budget is one no kill rate
        // can spend. (A kill spends an attempt of each task its process had started; with
        // the example's 3 attempts, three runs had no task FAILED and none above attempt 2.)
        { idempotencyKey: key, retry: { maxAttempts: 1000 } },
      );
      return { id: handle.id, retries };
    } catch (error) {
      if (!retryable(error)) throw error;
      await sleep(pauseMs);
    }
  }
}

/** Codes after which a call's outcome is unknown, or nothing was done: a keyed submit or a read is sent again. */
const retriedCodes = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Unknown, Code.Internal, Code.Aborted]);

/** Whether a failed call is sent again while a cluster elects leaders or a node is away. */
export function isRetried(error: unknown): boolean {
  return retriedCodes.has(ConnectError.from(error).code);
}

/** A task's status, read again (every 200 ms) for as long as the failure {@link isRetried}. */
export async function readUntilAnswered(client: TaskwireClient, taskId: string): Promise<TaskStatus> {
  for (;;) {
    try {
      return await client.getTask(taskId);
    } catch (error) {
      if (!isRetried(error)) throw error;
      await sleep(200);
    }
  }
}
