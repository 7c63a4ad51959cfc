import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type TaskwireClient } from "../sdk/client/index.ts";
import type { NatsConnectionSettings } from "../sdk/nats/index.ts";
import {
  createWorker,
  type TaskServiceImplementation,
  type Worker,
  type WorkerOptions,
} from "../worker-runtime/index.ts";
import type { FindNatsServerOptions } from "./nats-server-binary.ts";
import { type ManagedNatsServer, startNatsServer } from "./start-nats-server.ts";

/** Options of {@link createTestEnvironment}. */
export interface TestEnvironmentOptions {
  /** The handlers to run, from generated `implement<Service>()` functions. */
  services: TaskServiceImplementation[];
  /**
   * A running server to use, as a URL or connection settings (credentials, TLS...);
   * without it, a nats-server of its own on a free loopback port, its store in a temporary directory.
   */
  nats?: string | NatsConnectionSettings;
  /** More worker options (concurrency, middleware, onEvent...). */
  worker?: Omit<WorkerOptions, "nats" | "services">;
  /** How a missing nats-server is found or installed. */
  natsServer?: FindNatsServerOptions;
}

/** A worker and a client on a NATS server of their own: see {@link createTestEnvironment}. */
export interface TestEnvironment extends AsyncDisposable {
  /** A client that submits the services' tasks directly over NATS. */
  readonly client: TaskwireClient;
  /** The worker running the handlers. */
  readonly worker: Worker;
  /** The NATS server's URL (the first of the settings' servers), for more clients or workers. */
  readonly natsUrl: string;
  /** The URL or settings the worker and client connected with. */
  readonly nats: string | NatsConnectionSettings;
  /** Closes the client and the worker, then stops the server it started and removes its store. */
  close(): Promise<void>;
}

/**
 * Runs handlers in a real worker, in this process, against a real nats-server,
 * and gives a client to submit to them: a test goes through the whole path
 * (submit, delivery, the attempt, retries, the stored result) without writing
 * any NATS plumbing. The server is found, or built once, as `taskwire dev` does.
 *
 * ```ts
 * import { createTestEnvironment } from "taskwire/testing";
 * await using env = await createTestEnvironment({ services: [greeter] });
 * const task = await createGreeterServiceClient(env.client).greet({ name: "Ada" });
 * assert.equal((await task.result()).message, "Hello, Ada!");
 * ```
 */
export async function createTestEnvironment(options: TestEnvironmentOptions): Promise<TestEnvironment> {
  let server: ManagedNatsServer | undefined;
  let store: string | undefined;
  let nats = options.nats;
  if (nats === undefined) {
    store = await mkdtemp(join(tmpdir(), "taskwire-test-"));
    server = await startNatsServer(`nats://127.0.0.1:${await freePort()}`, store, options.natsServer);
    nats = server.url;
  }
  const servers = typeof nats === "string" ? nats : (nats.servers ?? "nats://127.0.0.1:4222");
  const natsUrl = (typeof servers === "string" ? servers : servers[0]) ?? "nats://127.0.0.1:4222";
  const parts: { close(): Promise<void> }[] = [];
  const close = async () => {
    for (const part of parts.splice(0).reverse()) await part.close();
    await server?.stop();
    if (store) await rm(store, { recursive: true, force: true });
  };
  try {
    const worker = await createWorker({ ...options.worker, nats, services: options.services });
    parts.push(worker);
    const client = await createClient({ nats, services: options.services.map((s) => s.definition) });
    parts.push(client);
    return { client, worker, natsUrl, nats, close, [Symbol.asyncDispose]: close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** A loopback port free at the time of asking. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}
