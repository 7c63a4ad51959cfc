import type { Consumer, JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { RequestPipeline } from "../../sdk/nats/request-pipeline.ts";
import { rawTopology } from "./raw-jetstream.ts";

/**
 * The loop of a raw consumer process: consumes `consumer` (`prefetch` messages
 * fetched ahead), tells the parent it is ready, and hands each message to
 * `handle` with a request pipeline for its stored publishes. A handler's
 * promise holds one of `prefetch` places until it settles; SIGTERM stops
 * consuming and drains the connection.
 */
export async function consumeMessages(
  nc: NatsConnection,
  consumer: Consumer,
  handle: (msg: JsMsg, requests: RequestPipeline) => Promise<void> | undefined,
): Promise<void> {
  const messages = await consumer.consume({ max_messages: rawTopology.prefetch });
  const requests = new RequestPipeline(nc);
  process.once("SIGTERM", () => {
    requests.close();
    void messages.close().then(() => nc.drain().then(() => process.exit(0)));
  });
  process.send?.({ type: "ready" });
  let pending = 0;
  let room: (() => void) | undefined;
  for await (const msg of messages) {
    while (pending >= rawTopology.prefetch) await new Promise<void>((resolve) => (room = resolve));
    const handled = handle(msg, requests);
    if (!handled) continue;
    pending++;
    void handled.finally(() => {
      pending--;
      room?.();
      room = undefined;
    });
  }
}
