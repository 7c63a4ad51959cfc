import { createClient, type GatewayClientOptions, TaskError, type TaskHandle } from "taskwire";
import { createEchoServiceClient, echoService } from "../gen/bench/v1/bench_taskwire.ts";
import type { Observe, Target } from "../target.ts";
import { payloadText } from "../target.ts";

/**
 * Taskwire, direct or through a gateway: one task per call through the generated
 * typed client (Submit), more through `client.submitBatch` (BatchSubmit); each
 * result through `handle.result()`.
 */
export async function createTaskwireTarget(
  connection: { nats: string } | GatewayClientOptions,
  keyed = false,
): Promise<Target> {
  const client = await createClient("nats" in connection ? { ...connection, services: [echoService] } : connection);
  const echo = createEchoServiceClient(client);
  // With keys, every submit also looks the key up: the cost of idempotency beyond the duplicate window.
  let submitted = 0;
  const submitOptions = () => (keyed ? { idempotencyKey: `bench-${submitted++}` } : {});
  const batch = (count: number) =>
    client.submitBatch(
      echoService.methods.echo,
      Array.from({ length: count }, () => ({ request: { text: payloadText } })),
    );
  const observer = (handle: TaskHandle | TaskError): Observe => {
    if (handle instanceof TaskError) throw handle;
    return async () => void (await handle.result());
  };
  return {
    async submit(count) {
      const handles = count === 1 ? [await echo.echo({ text: payloadText }, submitOptions())] : await batch(count);
      return handles.map(observer);
    },
    close: () => client.close(),
  };
}
