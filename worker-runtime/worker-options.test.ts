import { describe, expect, it } from "vitest";
import type { TaskError } from "../sdk/core/index.ts";
import { implementLimitedProbeService, implementProbeService } from "../test/gen/probe/v1/probe_taskwire.ts";
import { resolveWorkerOptions, type WorkerOptions } from "./worker-options.ts";

const probe = implementProbeService({ run: async () => ({}) });
const limited = implementLimitedProbeService({ run: async () => ({}) });
const resolve = (options: Partial<WorkerOptions>) =>
  resolveWorkerOptions({ nats: "nats://127.0.0.1:4222", services: [probe], ...options });

describe("resolveWorkerOptions", () => {
  it("applies the defaults: the service's concurrency, prefetch as concurrency, an id from host and pid", () => {
    const resolved = resolve({ services: [probe, limited] });
    expect(resolved.types.map((t) => [t.definition.workerType, t.concurrency, t.prefetch])).toEqual([
      ["probe", probe.definition.concurrency || 16, probe.definition.concurrency || 16],
      ["limited", limited.definition.concurrency || 16, limited.definition.concurrency || 16],
    ]);
    expect(resolved.types[0]?.methods.get("Run")?.method.name).toBe("Run");
    expect(resolved.workerId).toMatch(new RegExp(`-${process.pid}$`));
    expect(resolved).toMatchObject({ shutdownGraceMs: 30_000, statusIntervalMs: 250, results: {} });
  });

  it("takes the options given over the defaults", () => {
    const resolved = resolve({ concurrency: 3, prefetch: 7, workerId: "w-1", shutdownGraceMs: 0, results: false });
    expect(resolved.types[0]).toMatchObject({ concurrency: 3, prefetch: 7 });
    expect(resolved).toMatchObject({ workerId: "w-1", shutdownGraceMs: 0, results: false });
  });

  it("refuses bad values with INVALID_ARGUMENT, naming the option and the value", () => {
    const refusal = (options: Partial<WorkerOptions>) => {
      try {
        resolve(options);
      } catch (error) {
        return { code: (error as TaskError).code, message: (error as TaskError).rawMessage };
      }
      return undefined;
    };
    expect(refusal({ services: [] })?.message).toBe("createWorker needs at least one task service");
    expect(refusal({ services: [probe, probe] })?.message).toBe('worker type "probe" is given twice in services');
    expect(refusal({ concurrency: 0 })?.message).toBe("concurrency must be a positive integer, got 0");
    expect(refusal({ prefetch: 1.5 })?.message).toBe("prefetch must be a positive integer, got 1.5");
    expect(refusal({ shutdownGraceMs: -1 })?.message).toBe("shutdownGraceMs must be from 0 to 2147483647 ms, got -1");
    expect(refusal({ statusIntervalMs: Number.NaN })?.message).toBe(
      "statusIntervalMs must be from 1 to 2147483647 ms, got NaN",
    );
    expect(refusal({ workerId: "a.b" })).toEqual({
      code: 3, // INVALID_ARGUMENT
      message: `worker id "a.b" must be 1 to 64 letters, digits, '-' or '_' (it names the instance in subjects)`,
    });
  });
});
