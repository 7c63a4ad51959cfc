import { describe, expect, it } from "vitest";
import { describeServers, redactUrl, toConnectionOptions } from "./connection-settings.ts";

describe("NATS connection settings", () => {
  it("removes credentials from URLs, whatever they hold", () => {
    expect(redactUrl("nats://app:s3cret@a.internal:4222")).toBe("nats://a.internal:4222");
    expect(redactUrl("nats://tok/en@a.internal:4222")).toBe("nats://a.internal:4222");
    expect(redactUrl("nats://u:p@ss/w@a.internal")).toBe("nats://a.internal");
    expect(redactUrl("app:pw@127.0.0.1:4222")).toBe("127.0.0.1:4222");
    expect(redactUrl("tls://a.internal:4222")).toBe("tls://a.internal:4222");
    expect(describeServers({ servers: ["nats://u:p@a:1", "nats://b:2"] })).toBe("nats://a:1, nats://b:2");
  });

  it("takes user and password or a token out of a URL", async () => {
    const { options } = await toConnectionOptions("nats://u%40x:p@ss@a.internal:4222");
    expect(options.servers).toEqual(["nats://a.internal:4222"]);
    expect(options.authenticator).toBeTypeOf("function");
    const token = await toConnectionOptions({ servers: ["nats://t0ken@a:1", "nats://t0ken@b:2"] });
    expect(token.options.servers).toEqual(["nats://a:1", "nats://b:2"]);
  });

  it("names a bad combination without the secret", async () => {
    await expect(toConnectionOptions({ servers: ["nats://t1@a:1", "nats://t2@b:2"] })).rejects.toThrow(
      "NATS servers: nats://a:1, nats://b:2 carry different credentials",
    );
    await expect(toConnectionOptions({ user: "app" })).rejects.toThrow("NATS user app: set password too");
    await expect(toConnectionOptions({ password: { env: "X" } })).rejects.toThrow("NATS password: set user too");
    await expect(toConnectionOptions({ jetstream: { domain: "a", apiPrefix: "b" } })).rejects.toThrow(
      "NATS jetstream: set domain or apiPrefix, not both",
    );
    await expect(toConnectionOptions({ tls: { cert: "c.pem" } })).rejects.toThrow("NATS tls: cert and key go together");
  });

  it("passes the domain, the inbox prefix and the TLS server name on", async () => {
    const { options, jetstream } = await toConnectionOptions({
      servers: "nats://a:1",
      inboxPrefix: "_INBOX_a",
      jetstream: { domain: "hub" },
      tls: { serverName: "nats.internal", handshakeFirst: true },
    });
    expect(jetstream).toEqual({ domain: "hub" });
    expect(options.inboxPrefix).toBe("_INBOX_a");
    expect(options.tls).toEqual({ servername: "nats.internal", handshakeFirst: true });
  });

  it("pings a quiet server every 10 s, two unanswered and it moves on: a partition shows in seconds", async () => {
    expect((await toConnectionOptions("nats://a:1")).options).toMatchObject({ pingInterval: 10_000, maxPingOut: 2 });
    expect((await toConnectionOptions({ pingIntervalMs: 1_000 })).options.pingInterval).toBe(1_000);
    await expect(toConnectionOptions({ pingIntervalMs: 5 })).rejects.toThrow(
      "NATS pingIntervalMs: must be a whole number of milliseconds, 100 or more, got 5",
    );
  });
});
