import { type AddressInfo, createServer, connect as netConnect, type Socket } from "node:net";

/** A TCP proxy on loopback: a client connected through it can be cut off, and let back. */
export interface TcpProxy {
  /** `nats://` URL of the proxy. */
  readonly url: string;
  /** Drops every connection, and refuses new ones until {@link TcpProxy.restore}. */
  cut(): void;
  /** Accepts connections again. */
  restore(): void;
  close(): Promise<void>;
}

/** Starts a proxy to `targetPort` on 127.0.0.1, on a free port. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let refusing = false;
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
    client.pipe(upstream);
    upstream.pipe(client);
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
    close: () => {
      cut();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
