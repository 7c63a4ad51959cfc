import { execFile, execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { jetstreamManager } from "@nats-io/jetstream";
import { type NatsConnection, nkeys } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runWorkers } from "../../cli/commands.ts";
import { loadConfig } from "../../cli/load-config.ts";
import { createHashServiceClient, hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { hasher } from "../../examples/hash/hash-worker.ts";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient } from "../../sdk/client/create-client.ts";
import { jetStreamOptionsOf, type NatsConnectionSettings } from "../../sdk/nats/index.ts";
import { openConnection } from "../../sdk/nats/open-connection.ts";
import { createSupervisor } from "../../worker-runtime/create-supervisor.ts";
import { createWorker } from "../../worker-runtime/create-worker.ts";
import { probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { operatorMode } from "../support/nats-jwt.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { repoRoot } from "../support/tools.ts";

const run = promisify(execFile);
const password = "pw-7f3a9c1e";
const token = "tok-51be0d2a";

/** Connects with `settings`, checks JetStream answers, closes. */
async function connects(settings: string | NatsConnectionSettings): Promise<void> {
  const { nc } = await openConnection(settings, "nats-auth-test");
  try {
    await (await jetstreamManager(nc, jetStreamOptionsOf(nc))).getAccountInfo();
  } finally {
    await nc.close();
  }
}

/** The message openConnection rejects with; it must not contain any of `secrets`. */
async function refusal(settings: string | NatsConnectionSettings, secrets: string[]): Promise<string> {
  const error = await openConnection(settings).then(
    ({ nc }) => nc.close().then(() => new Error("connected")),
    (e: Error) => e,
  );
  for (const secret of secrets) expect(error.message).not.toContain(secret);
  return error.message;
}

/** Runs one hash task through a worker and a client connected with `settings`. */
async function runsATask(settings: NatsConnectionSettings | NatsConnection): Promise<void> {
  const worker = await createWorker({ nats: settings, services: [hasher] });
  const client = await createClient({ nats: settings, services: [hashService] });
  try {
    const task = await createHashServiceClient(client).digest({ text: "secured" });
    expect((await task.result()).hex).toMatch(/^[0-9a-f]{64}$/);
    expect((await client.getTask(task.id)).state).toBe(TaskState.SUCCEEDED);
  } finally {
    await client.close();
    await worker.close();
  }
}

describe("NATS connection settings", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-nats-auth-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe("user and password", () => {
    let nats: NatsServer;
    beforeAll(async () => {
      nats = await startNatsServer({
        config: `authorization { users = [ { user: app, password: "${password}" } ] }`,
      });
    }, 30_000);
    afterAll(() => nats?.stop());

    it("connects with the password from an env var and runs a task", async () => {
      process.env.TW_TEST_NATS_PASSWORD = password;
      await runsATask({ servers: nats.url, user: "app", password: { env: "TW_TEST_NATS_PASSWORD" } });
    });

    it("honours credentials in the URL and never prints them", async () => {
      await connects(`nats://app:${password}@127.0.0.1:${nats.port}`);
      const message = await refusal(`nats://app:wrong-${password}@127.0.0.1:${nats.port}`, [password, "wrong"]);
      expect(message).toContain(`cannot connect to NATS at nats://127.0.0.1:${nats.port}`);
      expect(message.toLowerCase()).toContain("authorization violation");
    });

    it("names the cause of a wrong or missing credential, not the secret", async () => {
      process.env.TW_TEST_NATS_WRONG = `x${password}`;
      const wrong = await refusal({ servers: nats.url, user: "app", password: { env: "TW_TEST_NATS_WRONG" } }, [
        password,
      ]);
      expect(wrong).toContain(nats.url);
      expect(wrong.toLowerCase()).toContain("authorization violation");
      const none = await refusal(nats.url, []);
      expect(none.toLowerCase()).toContain("authorization violation");
      delete process.env.TW_TEST_NATS_UNSET;
      expect(await refusal({ servers: nats.url, user: "app", password: { env: "TW_TEST_NATS_UNSET" } }, [])).toContain(
        "NATS password: environment variable TW_TEST_NATS_UNSET is not set",
      );
      expect(
        await refusal({ servers: nats.url, user: "app", password: { file: join(dir, "no-such-file") } }, []),
      ).toContain(`NATS password: cannot read ${join(dir, "no-such-file")}: ENOENT`);
    });
  });

  describe("token", () => {
    let nats: NatsServer;
    beforeAll(async () => {
      nats = await startNatsServer({ config: `authorization { token: "${token}" }` });
    }, 30_000);
    afterAll(() => nats?.stop());

    it("connects with the token from a file; a wrong one is refused without echo", async () => {
      const file = join(dir, "token");
      await writeFile(file, `${token}\n`);
      await connects({ servers: nats.url, token: { file } });
      await writeFile(join(dir, "bad-token"), "bad-token-value");
      const message = await refusal({ servers: nats.url, token: { file: join(dir, "bad-token") } }, [
        token,
        "bad-token-value",
      ]);
      expect(message.toLowerCase()).toContain("authorization violation");
    });
  });

  describe("nkey", () => {
    const user = nkeys.createUser();
    const seed = new TextDecoder().decode(user.getSeed());
    let nats: NatsServer;
    beforeAll(async () => {
      nats = await startNatsServer({ config: `authorization { users = [ { nkey: ${user.getPublicKey()} } ] }` });
    }, 30_000);
    afterAll(() => nats?.stop());

    it("connects with the seed from an env var; another seed is refused", async () => {
      process.env.TW_TEST_NATS_SEED = seed;
      await connects({ servers: nats.url, nkeySeed: { env: "TW_TEST_NATS_SEED" } });
      const other = new TextDecoder().decode(nkeys.createUser().getSeed());
      process.env.TW_TEST_NATS_OTHER_SEED = other;
      const message = await refusal({ servers: nats.url, nkeySeed: { env: "TW_TEST_NATS_OTHER_SEED" } }, [seed, other]);
      expect(message.toLowerCase()).toContain("authorization violation");
      process.env.TW_TEST_NATS_BAD_SEED = "not-a-seed";
      expect(
        await refusal({ servers: nats.url, nkeySeed: { env: "TW_TEST_NATS_BAD_SEED" } }, ["not-a-seed"]),
      ).toContain("NATS nkeySeed: not an nkey seed");
    });
  });

  describe("a rotated password file", () => {
    let nats: NatsServer;
    const users = (pw: string) => `authorization { users = [ { user: app, password: "${pw}" } ] }`;
    beforeAll(async () => {
      nats = await startNatsServer({ config: users(password) });
    }, 30_000);
    afterAll(() => nats?.stop());

    it("is read again when the connection is made again", async () => {
      const file = join(dir, "rotated-password");
      await writeFile(file, password);
      const { nc } = await openConnection({ servers: nats.url, user: "app", password: { file } });
      try {
        const reconnected = (async () => {
          for await (const status of nc.status()) if (status.type === "reconnect") return true;
          return false;
        })();
        // The new password goes to the file, then to the server, which drops the
        // connection that logged in with the old one.
        await writeFile(file, `rotated-${password}\n`);
        await nats.reconfigure(users(`rotated-${password}`));
        expect(await reconnected).toBe(true);
        await (await jetstreamManager(nc)).getAccountInfo();
      } finally {
        await nc.close();
      }
    }, 30_000);
  });

  describe("operator mode, .creds file", () => {
    const mode = operatorMode();
    let nats: NatsServer;
    beforeAll(async () => {
      nats = await startNatsServer({ config: mode.config });
    }, 30_000);
    afterAll(() => nats?.stop());

    it("runs a task with a creds path relative to taskwire.yaml; another account's user is refused", async () => {
      const configDir = join(dir, "creds");
      await mkdir(configDir, { recursive: true });
      await writeFile(join(configDir, "app.creds"), mode.creds);
      await writeFile(join(configDir, "stranger.creds"), mode.strangerCreds);
      await writeFile(join(configDir, "taskwire.yaml"), `nats:\n  url: ${nats.url}\n  creds: app.creds\n`);
      const config = await loadConfig(join(configDir, "taskwire.yaml"));
      expect(config.nats.connection.creds).toBe(join(configDir, "app.creds"));
      await runsATask(config.nats.connection);
      const message = await refusal({ servers: nats.url, creds: join(configDir, "stranger.creds") }, [mode.userSeed]);
      expect(message.toLowerCase()).toContain("authorization violation");
      expect(await refusal({ servers: nats.url, creds: join(configDir, "missing.creds") }, [])).toContain(
        `NATS creds: cannot read ${join(configDir, "missing.creds")}: ENOENT`,
      );
    });
  });

  describe("TLS with a client certificate", () => {
    let nats: NatsServer;
    let pki: string;
    beforeAll(async () => {
      pki = join(dir, "pki");
      const sh = (script: string) => execFileSync("bash", ["-ec", script], { cwd: dir, stdio: "pipe" });
      sh(`mkdir -p pki && cd pki
        openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca -keyout ca-key.pem -out ca.pem
        for who in server client; do
          openssl req -newkey rsa:2048 -nodes -subj /CN=$who -keyout $who-key.pem -out $who.csr
          printf 'subjectAltName=DNS:nats.internal,IP:127.0.0.1\\n' > $who.ext
          openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 -extfile $who.ext -out $who.pem
        done`);
      nats = await startNatsServer({
        config: `tls { cert_file: "${pki}/server.pem", key_file: "${pki}/server-key.pem", ca_file: "${pki}/ca.pem", verify: true }`,
      });
    }, 60_000);
    afterAll(() => nats?.stop());

    it("runs a task over TLS with the CA, the client certificate and a server name", async () => {
      await runsATask({
        servers: nats.url,
        tls: {
          ca: `${pki}/ca.pem`,
          cert: `${pki}/client.pem`,
          key: `${pki}/client-key.pem`,
          serverName: "nats.internal",
        },
      });
    });

    it("is refused without the client certificate, and names a missing file", async () => {
      const message = await refusal({ servers: nats.url, tls: { ca: `${pki}/ca.pem` } }, []);
      expect(message).toContain(`cannot connect to NATS at ${nats.url}`);
      expect(await refusal({ servers: nats.url, tls: { ca: `${pki}/missing.pem` } }, [])).toContain(
        `NATS tls.ca: cannot read ${pki}/missing.pem: ENOENT`,
      );
    });
  });

  describe("TLS first (the server's handshake_first)", () => {
    let nats: NatsServer;
    let pki: string;
    beforeAll(async () => {
      pki = join(dir, "pki-first");
      execFileSync(
        "bash",
        [
          "-ec",
          `mkdir -p pki-first && cd pki-first
        openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca -keyout ca-key.pem -out ca.pem
        openssl req -newkey rsa:2048 -nodes -subj /CN=server -keyout server-key.pem -out server.csr
        printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 -extfile server.ext -out server.pem`,
        ],
        { cwd: dir, stdio: "pipe" },
      );
      nats = await startNatsServer({
        config: `tls { cert_file: "${pki}/server.pem", key_file: "${pki}/server-key.pem", handshake_first: true }`,
      });
    }, 60_000);
    afterAll(() => nats?.stop());

    it("runs a task with handshakeFirst; without it the connection is refused, naming the server", async () => {
      await runsATask({ servers: nats.url, tls: { ca: `${pki}/ca.pem`, handshakeFirst: true } });
      const message = await refusal({ servers: nats.url, tls: { ca: `${pki}/ca.pem` } }, []);
      expect(message).toContain(`cannot connect to NATS at ${nats.url}`);
    });
  });

  describe("JetStream domain", () => {
    let nats: NatsServer;
    beforeAll(async () => {
      nats = await startNatsServer({ jetstreamDomain: "hub" });
    }, 30_000);
    afterAll(() => nats?.stop());

    /** Runs a task on one connection, returning the JetStream API subjects it published to. */
    async function apiSubjects(settings: NatsConnectionSettings): Promise<string[]> {
      const { nc } = await openConnection(settings);
      // The server maps $JS.hub.API to $JS.API itself: only the client shows which one it used.
      const protocol = (nc as unknown as { protocol: { publish: (subject: string, ...rest: unknown[]) => void } })
        .protocol;
      const publish = protocol.publish.bind(protocol);
      const subjects: string[] = [];
      protocol.publish = (subject, ...rest) => {
        if (subject.startsWith("$JS.")) subjects.push(subject);
        publish(subject, ...rest);
      };
      try {
        await runsATask(nc);
      } finally {
        await nc.close();
      }
      return subjects;
    }

    it("runs a task with every JetStream, KV and direct-get call in the domain or under the prefix", async () => {
      const inDomain = await apiSubjects({ servers: nats.url, jetstream: { domain: "hub" } });
      expect(inDomain.some((s) => s.startsWith("$JS.hub.API.DIRECT.GET."))).toBe(true);
      expect(inDomain.filter((s) => !s.startsWith("$JS.hub.API.") && !s.startsWith("$JS.ACK."))).toEqual([]);
      const prefixed = await apiSubjects({ servers: nats.url, jetstream: { apiPrefix: "$JS.hub.API" } });
      expect(prefixed.filter((s) => !s.startsWith("$JS.hub.API.") && !s.startsWith("$JS.ACK."))).toEqual([]);
    });

    it("fails in a domain the server does not have", async () => {
      await expect(runsATask({ servers: nats.url, jetstream: { domain: "elsewhere" } })).rejects.toThrow(
        /starting the worker/,
      );
    });
  });

  describe("taskwire.yaml", () => {
    let nats: NatsServer;
    beforeAll(async () => {
      nats = await startNatsServer({
        config: `authorization { users = [ { user: app, password: "${password}" } ] }`,
      });
    }, 30_000);
    afterAll(() => nats?.stop());

    it("runs a task on worker processes started from a config with an env secret", async () => {
      const configDir = join(dir, "yaml");
      await writeFile(join(dir, "placeholder"), "");
      execFileSync("mkdir", ["-p", configDir]);
      await writeFile(
        join(configDir, "taskwire.yaml"),
        `nats:
  url: ${nats.url}
  user: app
  password: { env: TW_TEST_YAML_PASSWORD }
worker:
  pools:
    - name: probe
      module: ${join(repoRoot, "test/fixtures/probe-worker.ts")}
`,
      );
      process.env.TW_TEST_YAML_PASSWORD = password;
      const config = await loadConfig(join(configDir, "taskwire.yaml"));
      expect(JSON.stringify(config)).not.toContain(password);
      const supervisor = runWorkers(config);
      const client = await createClient({ nats: config.nats.connection, services: [probeService] });
      try {
        await supervisor.ready;
        const task = await client.submitTask(probeService.methods.run, { label: "from-yaml" });
        expect((await task.result()).label).toBe("from-yaml");
      } finally {
        await client.close();
        await supervisor.stop();
      }
    }, 60_000);

    it("taskwire gateway names the server and the cause of a refused login, never the secret", async () => {
      const configDir = join(dir, "cli");
      await mkdir(configDir, { recursive: true });
      await writeFile(join(configDir, "nats-password"), `wrong-${password}\n`);
      await writeFile(
        join(configDir, "taskwire.yaml"),
        `nats:
  url: ${nats.url}
  user: app
  password: { file: nats-password }
gateway:
  port: 0
  services: [${join(repoRoot, "examples/gen/example/v1/hash_taskwire.ts")}]
`,
      );
      const gateway = (env: NodeJS.ProcessEnv) =>
        run(
          process.execPath,
          ["--conditions=taskwire-source", "cli/main.ts", "gateway", "--config", join(configDir, "taskwire.yaml")],
          { cwd: repoRoot, env: { ...process.env, ...env } },
        ).then(
          () => "started",
          (e: { stderr: string }) => e.stderr,
        );
      const fromFile = await gateway({});
      expect(fromFile).toContain(`cannot connect to NATS at ${nats.url}: Authorization Violation`);
      expect(fromFile).not.toContain(password);
      // TASKWIRE_NATS replaces the URL; credentials in it as well as in the file are refused, not printed.
      const twice = await gateway({ TASKWIRE_NATS: `nats://app:other-${password}@127.0.0.1:${nats.port}` });
      expect(twice).toContain(
        `cannot connect to NATS at nats://127.0.0.1:${nats.port}: NATS servers: nats://127.0.0.1:${nats.port} carries credentials and user/password or token are set too`,
      );
      expect(twice).not.toContain(password);
    }, 60_000);

    it("createSupervisor refuses to hand a plain-string secret to worker processes", () => {
      const literal = { servers: nats.url, user: "app", password };
      const error = (() => {
        try {
          createSupervisor({ nats: literal, pools: [{ name: "p", module: "m.ts" }] });
        } catch (e) {
          return e as Error;
        }
      })();
      expect(error?.message).toBe(
        "createSupervisor: NATS password must be given as { env: NAME } or { file: PATH } to pass it on",
      );
    });

    it("refuses a literal secret and unknown keys, naming the file and key", async () => {
      const file = join(dir, "literal.yaml");
      await writeFile(file, `nats:\n  user: app\n  password: ${password}\n`);
      const error = await loadConfig(file).catch((e: Error) => e);
      expect((error as Error).message).toContain(
        `${file}: nats.password is a secret: it cannot be written in the file`,
      );
      expect((error as Error).message).not.toContain(password);
      await writeFile(file, "nats:\n  passwd: { env: X }\n");
      await expect(loadConfig(file)).rejects.toThrow(`${file}: nats.passwd is not a setting`);
      await writeFile(file, `nats:\n  url: nats://app:${password}@127.0.0.1:4222\n`);
      const inUrl = await loadConfig(file).catch((e: Error) => e);
      expect((inUrl as Error).message).toContain(`${file}: nats.url carries credentials`);
      expect((inUrl as Error).message).not.toContain(password);
    });
  });
});
