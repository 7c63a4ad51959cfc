import { execFile } from "node:child_process";
import { appendFile, cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: a plain JavaScript script, without declarations.
import { checkLayers } from "../scripts/check-layers.mjs";
import { repoRoot } from "./support/tools.ts";

const check = checkLayers as (root: string) => string[];
const script = join(repoRoot, "scripts/check-layers.mjs");

describe("the layer check (npm run lint)", () => {
  let copy: string;
  beforeAll(async () => {
    copy = await mkdtemp(join(tmpdir(), "taskwire-layers-"));
    for (const folder of ["sdk", "server", "worker-runtime", "cli", "codegen"]) {
      await cp(join(repoRoot, folder), join(copy, folder), { recursive: true });
    }
  });
  afterAll(async () => {
    if (copy) await rm(copy, { recursive: true, force: true });
  });

  it("finds nothing in the repository", () => {
    expect(check(repoRoot)).toEqual([]);
  });

  it("fails on an import against the direction, past an index, or of connect-es internals", async () => {
    await appendFile(join(copy, "sdk/core/task-id.ts"), 'import { createClient } from "../client/index.ts";\n');
    await appendFile(join(copy, "server/index.ts"), 'export { createWorker } from "../worker-runtime/index.ts";\n');
    await appendFile(
      join(copy, "worker-runtime/index.ts"),
      'export { readStatus } from "../sdk/nats/status-store.ts";\n',
    );
    await appendFile(join(copy, "sdk/nats/index.ts"), 'export { createClient } from "taskwire";\n');
    await appendFile(
      join(copy, "server/fast-path.ts"),
      'import { trailerMux } from "@connectrpc/connect/protocol-connect";\n',
    );
    const problems = check(copy);
    expect(problems).toEqual([
      expect.stringMatching(
        /^sdk\/core\/task-id\.ts:\d+: sdk\/core may not import sdk\/client \("\.\.\/client\/index\.ts"\)$/,
      ),
      expect.stringMatching(/^sdk\/nats\/index\.ts:\d+: sdk\/nats may not import sdk \("taskwire"\)$/),
      expect.stringMatching(
        /^server\/fast-path\.ts:\d+: connect-es internals are imported through sdk\/wire\/connect-internals\.ts/,
      ),
      expect.stringMatching(/^server\/index\.ts:\d+: server may not import worker-runtime/),
      expect.stringMatching(/^worker-runtime\/index\.ts:\d+: sdk\/nats is entered through its index\.ts/),
    ]);
    const failed = await promisify(execFile)(process.execPath, [script, copy]).catch((error) => error);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain("check-layers: 5 import(s) against the layers");
  });
});
