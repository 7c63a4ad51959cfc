import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { createSupervisor, type Supervisor } from "../../worker-runtime/create-supervisor.ts";
import { probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { repoRoot } from "../support/tools.ts";

const run = promisify(execFile);
const asRoot = process.getuid?.() === 0;
/**
 * For the checks that need root: the test machine runs its suite as root, so they run;
 * elsewhere each is reported skipped, its name saying why, and this says so too.
 */
const asRootOnly = it.skipIf(!asRoot);
if (!asRoot) {
  console.warn(
    `pools.test.ts: skipping the checks marked "root only": they need a supervisor that can switch users, which takes root (this runs as uid ${process.getuid?.()})`,
  );
}
const nobody = asRoot ? Number(execFileSync("id", ["-u", "nobody"], { encoding: "utf8" })) : -1;
const nogroup = asRoot ? Number(execFileSync("getent", ["group", "nogroup"], { encoding: "utf8" }).split(":")[2]) : -1;

/** Pools run as another OS user (Taskqueue's per-pool user and group). */
describe("worker pools as another user", () => {
  let nats: NatsServer;
  let supervisor: Supervisor | undefined;
  let client: TaskwireClient;

  beforeAll(async () => {
    nats = await startNatsServer();
    client = await createClient({ nats: nats.url, services: [probeService] });
  }, 30_000);

  afterAll(async () => {
    await supervisor?.stop();
    await client?.close();
    await nats?.stop();
  });

  asRootOnly(
    "runs the pool's processes with the user's uid and the group's gid (root only: it starts them as nobody)",
    async () => {
      supervisor = createSupervisor({
        nats: nats.url,
        pools: [{ name: "whoami", module: "test/fixtures/whoami-worker.ts", user: "nobody", group: "nogroup" }],
        onEvent: () => {},
      });
      await supervisor.ready;
      const task = await client.submitTask(probeService.methods.run, { label: "who" });
      expect((await task.result()).label).toBe(`${nobody}:${nogroup}`);
    },
  );

  const pool = (extra: object) => ({ nats: nats.url, pools: [{ name: "p", module: "m.ts", ...extra }] });

  // Not as root, createSupervisor refuses any pool with a user before it looks the user up.
  asRootOnly("names an unknown user or group (root only: otherwise any user is refused first)", () => {
    expect(() => createSupervisor(pool({ user: "no-such-user" }))).toThrow(/pool "p": unknown user "no-such-user"/);
    expect(() => createSupervisor(pool({ user: "nobody", group: "no-such-group" }))).toThrow(
      /pool "p": unknown group "no-such-group"/,
    );
  });

  it("names a group without a user", () => {
    expect(() => createSupervisor(pool({ group: "nogroup" }))).toThrow(/group "nogroup" needs a user too/);
  });

  it("refuses to switch users when the supervisor does not run as root", async () => {
    const refusal = (uid: number) =>
      `pool "p" runs as user "root": the supervisor must run as root to switch users (it runs as uid ${uid})`;
    if (!asRoot) {
      // Already not root: the check runs here.
      expect(() => createSupervisor(pool({ user: "root" }))).toThrow(refusal(process.getuid?.() ?? -1));
      return;
    }
    // As root, in a process run as nobody.
    const script = `import { createSupervisor } from "./worker-runtime/create-supervisor.ts";
try { createSupervisor({ nats: "nats://127.0.0.1:1", pools: [{ name: "p", module: "m.ts", user: "root" }] }); }
catch (error) { console.log(error.message); }`;
    const { stdout } = await run(
      process.execPath,
      ["--conditions=taskwire-source", "--input-type=module", "-e", script],
      {
        cwd: repoRoot,
        uid: nobody,
        gid: nogroup,
      },
    );
    expect(stdout.trim()).toBe(refusal(nobody));
  });
});
