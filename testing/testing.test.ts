import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHashServiceClient } from "../examples/gen/example/v1/hash_taskwire.ts";
import { hasher } from "../examples/hash/hash-worker.ts";
import { implementProbeService } from "../test/gen/probe/v1/probe_taskwire.ts";
import { startNatsServer as startTestNatsServer } from "../test/support/nats-server.ts";
import { natsServerBinary } from "../test/support/tools.ts";
import { createTestEnvironment, findNatsServer, howToInstall, pinnedNatsServer, runTaskHandler } from "./index.ts";
import { isSupported } from "./nats-server-binary.ts";

const sha256Hello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

describe("runTaskHandler: one handler, in process", () => {
  it("returns the stored result and the progress the handler reported", async () => {
    const probe = implementProbeService({
      async run(request, ctx) {
        ctx.progress(0.25, "a quarter");
        ctx.heartbeat();
        return { label: `${request.label}:${ctx.metadata.tenant}`, attempt: ctx.attempt };
      },
    });
    const run = await runTaskHandler(probe, "run", { label: "x" }, { attempt: 2, metadata: { tenant: "t1" } });
    expect(run.result).toMatchObject({ $typeName: "probe.v1.RunResponse", label: "x:t1", attempt: 2 });
    expect(run.progress).toEqual([{ fraction: 0.25, message: "a quarter" }]);
    expect(run.heartbeats).toBe(1);
  });

  it("checks the request as a submit does", async () => {
    await expect(runTaskHandler(hasher, "digest", { text: "" })).rejects.toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: "example.v1.DigestRequest is missing required field: text",
    });
  });

  it("throws the handler's error as it is", async () => {
    await expect(runTaskHandler(hasher, "digest", { text: "a", algorithm: "md5" })).rejects.toMatchObject({
      retryable: false,
      rawMessage: 'unsupported algorithm "md5": use sha256 or sha512',
    });
  });

  it("aborts the handler's signal at the deadline and on cancellation", async () => {
    const reasons: string[] = [];
    const probe = implementProbeService({
      async run(_request, ctx) {
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
        reasons.push((ctx.signal.reason as Error).message);
        return {};
      },
    });
    await runTaskHandler(probe, "run", {}, { timeoutMs: 20 });
    const cancel = new AbortController();
    const cancelled = runTaskHandler(probe, "run", {}, { signal: cancel.signal });
    cancel.abort();
    await cancelled;
    // ConnectError messages carry their code.
    expect(reasons).toEqual([
      expect.stringMatching(/^\[deadline_exceeded\] attempt 1 passed its deadline/),
      "[canceled] the task was cancelled",
    ]);
  });

  it("names the methods a service has when asked for another", async () => {
    // @ts-expect-error: not a method of HashService
    await expect(runTaskHandler(hasher, "digst", { text: "a" })).rejects.toThrow(
      'example.v1.HashService has no method "digst"; its methods are digest',
    );
  });
});

describe("createTestEnvironment: a real worker and nats-server", () => {
  it("runs a task end to end and cleans up after itself", async () => {
    let natsUrl: string;
    {
      await using env = await createTestEnvironment({
        services: [hasher],
        natsServer: { env: { TASKWIRE_NATS_SERVER: natsServerBinary() } },
      });
      natsUrl = env.natsUrl;
      const task = await createHashServiceClient(env.client).digest({ text: "hello" });
      expect(await task.result()).toMatchObject({ hex: sha256Hello, rounds: 1 });
    }
    // The server it started is gone with it.
    const { connect } = await import("@nats-io/transport-node");
    await expect(connect({ servers: natsUrl, reconnect: false, timeout: 1000 })).rejects.toThrow();
  }, 60_000);
  it("connects to a server of the caller's with connection settings", async () => {
    const nats = await startTestNatsServer({ config: 'authorization { token: "env-token-1" }' });
    process.env.TW_TESTING_NATS_TOKEN = "env-token-1";
    try {
      await using env = await createTestEnvironment({
        services: [hasher],
        nats: { servers: nats.url, token: { env: "TW_TESTING_NATS_TOKEN" } },
      });
      expect(env.natsUrl).toBe(nats.url);
      const task = await createHashServiceClient(env.client).digest({ text: "hello" });
      expect(await task.result()).toMatchObject({ hex: sha256Hello });
    } finally {
      await nats.stop();
    }
  }, 60_000);
});

describe("findNatsServer", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-find-"));
    // Debian's nats-server is 2.9: too old for Taskwire.
    await writeFile(join(dir, "nats-server"), '#!/bin/sh\necho "nats-server: v2.9.25"\n');
    await chmod(join(dir, "nats-server"), 0o755);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("takes TASKWIRE_NATS_SERVER, then a recent enough one on PATH", async () => {
    const pinned = natsServerBinary();
    expect(await findNatsServer({ env: { TASKWIRE_NATS_SERVER: pinned } })).toBe(pinned);
    const pinnedDir = pinned.slice(0, pinned.lastIndexOf("/"));
    expect(await findNatsServer({ env: { PATH: `${dir}:${pinnedDir}`, XDG_CACHE_HOME: dir } })).toBe(pinned);
    await expect(findNatsServer({ env: { TASKWIRE_NATS_SERVER: join(dir, "missing") } })).rejects.toThrow(
      `TASKWIRE_NATS_SERVER=${join(dir, "missing")} is not an executable file`,
    );
  });

  it("without one or Go, says why each candidate failed and how to get one", async () => {
    const error = await findNatsServer({ env: { PATH: dir, XDG_CACHE_HOME: dir }, platform: "linux" }).catch(
      (e: Error) => e,
    );
    expect((error as Error).message).toBe(
      howToInstall("linux", [`${join(dir, "nats-server")} is v2.9.25, older than 2.10`]),
    );
    expect((error as Error).message).toContain("nats-server-v2.15.2-linux-amd64.tar.gz");
    expect(howToInstall("darwin")).toContain("brew install nats-server");
  });

  it("pins the release the repository's own tools install", async () => {
    const script = await readFile(new URL("../scripts/install-tools.sh", import.meta.url), "utf8");
    expect(script).toContain(`NATS_SERVER_VERSION=${pinnedNatsServer}\n`);
  });

  it("knows which versions are supported", () => {
    expect([isSupported("v2.9.25"), isSupported("v2.10.0"), isSupported("v2.15.2"), isSupported("v3.0.0")]).toEqual([
      false,
      true,
      true,
      true,
    ]);
  });
});
