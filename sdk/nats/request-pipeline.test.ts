import { connect, errors, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsServer, startNatsServer } from "../../test/support/nats-server.ts";
import { RequestPipeline } from "./request-pipeline.ts";

describe("RequestPipeline", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    nc.subscribe("echo.>", { callback: (_, msg) => void msg.respond(msg.data) });
  });
  afterAll(async () => {
    await nc.close();
    await nats.stop();
  });

  it("answers every request of one turn, each with its own reply", async () => {
    const pipeline = new RequestPipeline(nc);
    const replies = await Promise.all(
      Array.from({ length: 100 }, (_, i) => pipeline.request(`echo.${i}`, new TextEncoder().encode(`m${i}`))),
    );
    expect(replies.map((r) => r.string())).toEqual(Array.from({ length: 100 }, (_, i) => `m${i}`));
    pipeline.close();
  });

  it("fails NoResponders when nobody listens, and sends nothing of a turn it was closed in", async () => {
    const pipeline = new RequestPipeline(nc);
    await expect(pipeline.request("nobody.here", new Uint8Array(0))).rejects.toBeInstanceOf(errors.NoRespondersError);
    const seen: string[] = [];
    const probe = nc.subscribe("dropped", { callback: (_, msg) => void seen.push(msg.string()) });
    const dropped = pipeline.request("dropped", new TextEncoder().encode("late"));
    pipeline.close();
    await expect(dropped).rejects.toBeInstanceOf(errors.ClosedConnectionError);
    await new Promise((turnEnded) => setImmediate(turnEnded)); // when the turn's requests would have left
    await nc.flush(); // anything published by now has reached the server and come back
    expect(seen).toEqual([]);
    probe.unsubscribe();
  });
});
