import { type AddressInfo, createServer, connect as netConnect, type Socket } from "node:net";

/** A TCP proxy on loopback: a client connected through it can be cut off, and let back. */
export interface TcpProxy {
  /** `nats://` URL of the proxy. */
  readonly url: string;
  /** Drops every connection, and refuses new ones until {@link TcpProxy.restore}. */
  cut(): void;
  /** Accepts connections again. */
  restore(): void;
  /**
   * Once a client sends bytes containing `marker`, holds everything the server
   * sends to the clients (in order) until {@link TcpProxy.release}, which hands
   * each client what it held in one write.
   */
  holdAfter(marker: string): void;
  /** Whether the bytes held so far contain `text`. */
  holds(text: string): boolean;
  /** Delivers what was held, and stops holding. */
  release(): void;
  close(): Promise<void>;
}

/** Starts a proxy to `targetPort` on 127.0.0.1, on a free port. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let refusing = false;
  let marker: string | undefined;
  let held: { client: Socket; chunk: Buffer }[] | undefined;
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on("error", () => socket.destroy());
    socket.on("close", () => sockets.delete(socket));
  };
  const server = createServer((client) => {
    if (refusing) return client.destroy();
    const upstream = netConnect(targetPort, "127.0.0.1");
    track(client);
    track(upstream);
    client.on("data", (chunk: Buffer) => {
      if (marker !== undefined && chunk.includes(marker)) {
        marker = undefined;
        held = [];
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (held) held.push({ client, chunk });
      else client.write(chunk);
    });
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const cut = () => {
    refusing = true;
    for (const socket of sockets) socket.destroy();
  };
  return {
    url: `nats://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cut,
    restore: () => {
      refusing = false;
    },
    holdAfter: (text) => {
      marker = text;
    },
    holds: (text) => Buffer.concat((held ?? []).map(({ chunk }) => chunk)).includes(text),
    release: () => {
      const writes = held ?? [];
      held = undefined;
      // One write per client, as a busy process would read them all at once.
      for (const client of new Set(writes.map((w) => w.client))) {
        client.write(Buffer.concat(writes.filter((w) => w.client === client).map((w) => w.chunk)));
      }
    },
    close: () => {
      cut();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
