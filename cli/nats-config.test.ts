import { describe, expect, it } from "vitest";
import { parseNatsConfig } from "./nats-config.ts";

const file = "/etc/taskwire/taskwire.yaml";
const parse = (value: unknown, env: NodeJS.ProcessEnv = {}) => parseNatsConfig(value, file, env);

describe("taskwire.yaml nats:", () => {
  it("resolves paths against the file and keeps secrets as references", () => {
    const config = parse({
      servers: ["nats://a:4222", "nats://b:4222"],
      user: "app",
      password: { env: "NATS_PASSWORD" },
      nkeySeed: { file: "secrets/app.nk" },
      creds: "secrets/app.creds",
      tls: { ca: "certs/ca.pem", cert: "/abs/client.pem", key: "certs/key.pem", serverName: "nats.internal" },
      jetstream: { apiPrefix: "$JS.hub.API" },
    });
    expect(config.url).toBe("nats://a:4222");
    expect(config.dataDir).toBe("/etc/taskwire/.taskwire/nats");
    expect(config.connection).toEqual({
      servers: ["nats://a:4222", "nats://b:4222"],
      user: "app",
      password: { env: "NATS_PASSWORD" },
      nkeySeed: { file: "/etc/taskwire/secrets/app.nk" },
      creds: "/etc/taskwire/secrets/app.creds",
      tls: {
        ca: "/etc/taskwire/certs/ca.pem",
        cert: "/abs/client.pem",
        key: "/etc/taskwire/certs/key.pem",
        serverName: "nats.internal",
      },
      jetstream: { apiPrefix: "$JS.hub.API" },
    });
  });

  it("lets TASKWIRE_NATS replace the servers", () => {
    expect(parse({ url: "nats://a:1" }, { TASKWIRE_NATS: "nats://x:1, nats://y:2" }).connection.servers).toEqual([
      "nats://x:1",
      "nats://y:2",
    ]);
    expect(parse(undefined).url).toBe("nats://127.0.0.1:4222");
  });

  it("reads the replicas of a deployment, unset by default", () => {
    expect(parse({ replicas: 3 }).replicas).toBe(3);
    expect(parse(undefined).replicas).toBeUndefined();
  });

  it("refuses, naming the file and the key", () => {
    const refuses = (value: unknown, message: string) => expect(() => parse(value)).toThrow(`${file}: ${message}`);
    refuses({ token: "hunter2" }, "nats.token is a secret: it cannot be written in the file");
    refuses({ token: { env: "A", file: "b" } }, "nats.token must be { env: NAME } or { file: PATH }");
    refuses({ token: { env: "1-bad" } }, "nats.token.env must be an environment variable name");
    refuses({ user: "app" }, "nats needs user and password together");
    refuses({ url: "nats://a:1", servers: ["nats://b:1"] }, "nats has both url and servers");
    refuses({ servers: [] }, "nats.servers must be a non-empty list of URLs");
    refuses({ tls: { cert: "c.pem" } }, "nats.tls needs cert and key together");
    refuses({ tls: { verify: true } }, "nats.tls.verify is not a setting");
    refuses({ jetstream: { domain: "a", apiPrefix: "b" } }, "nats.jetstream has both domain and apiPrefix");
    refuses({ servers: ["nats://u:p@a:1"] }, "nats.servers[0] carries credentials");
    refuses({ replicas: 2 }, "nats.replicas must be 1, 3 or 5, got 2");
    refuses({ pingIntervalMs: 0 }, "nats.pingIntervalMs must be a whole number of milliseconds, 100 or more, got 0");
    refuses({ replicas: "3" }, 'nats.replicas must be 1, 3 or 5, got "3"');
    expect(() => parse({ token: "hunter2" })).not.toThrow(/hunter2/);
  });
});
