import { Code, createClient, type Transport } from "@connectrpc/connect";
import { expect } from "vitest";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { TaskService } from "../../gen/taskwire/v1/task_service_pb.ts";
import { endlessTaskId, type FakeTaskBackend } from "./fake-task-backend.ts";

/**
 * Asserts that a WaitTask call the client abandons (its signal aborts), and one
 * whose deadline passes, fail as such and end the gateway's handler: the
 * backend's wait sees its signal abort.
 */
export async function expectAbandonedCallsToEnd(transport: Transport, backend: FakeTaskBackend): Promise<void> {
  const client = createClient(TaskService, transport);
  const signals = backend.watchSignals.length;
  const abandoned = new AbortController();
  const waiting = client.waitTask({ taskId: endlessTaskId }, { signal: abandoned.signal });
  await expect.poll(() => backend.watchSignals.length).toBe(signals + 1);
  abandoned.abort();
  await expect(waiting).rejects.toMatchObject({ code: Code.Canceled });
  await expect.poll(() => backend.watchSignals[signals]?.aborted).toBe(true);

  await expect(client.waitTask({ taskId: endlessTaskId }, { timeoutMs: 200 })).rejects.toMatchObject({
    code: Code.DeadlineExceeded,
  });
  await expect.poll(() => backend.watchSignals[signals + 1]?.aborted).toBe(true);
}

/**
 * As {@link expectAbandonedCallsToEnd}, for a server stream: a WatchTask the
 * client abandons after its first message, and one whose deadline passes, end
 * the gateway's handler.
 */
export async function expectAbandonedStreamsToEnd(transport: Transport, backend: FakeTaskBackend): Promise<void> {
  const client = createClient(TaskService, transport);
  const signals = backend.watchSignals.length;
  const abandoned = new AbortController();
  const states: TaskState[] = [];
  const watching = (async () => {
    for await (const { status } of client.watchTask({ taskId: endlessTaskId }, { signal: abandoned.signal })) {
      states.push(status?.state ?? TaskState.UNSPECIFIED);
    }
  })();
  await expect.poll(() => states).toEqual([TaskState.PENDING]);
  abandoned.abort();
  await expect(watching).rejects.toMatchObject({ code: Code.Canceled });
  await expect.poll(() => backend.watchSignals[signals]?.aborted).toBe(true);

  const timed = (async () => {
    for await (const _ of client.watchTask({ taskId: endlessTaskId }, { timeoutMs: 200 }));
  })();
  await expect(timed).rejects.toMatchObject({ code: Code.DeadlineExceeded });
  await expect.poll(() => backend.watchSignals[signals + 1]?.aborted).toBe(true);
}
