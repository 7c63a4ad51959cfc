import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Schedule } from "../../gen/taskwire/v1/schedule_service_pb.ts";
import { declaredSchedules, scheduleKey, type TaskBackend, type TaskRegistry } from "../core/index.ts";
import { jetStreamOptionsOf } from "./connection-settings.ts";
import { createNatsTaskBackend } from "./nats-task-backend.ts";
import type { StatusTopologyOptions, WorkerTypeTopologyOptions } from "./provisioning.ts";
import { ScheduleStore } from "./schedule-store.ts";
import { ScheduleTicker } from "./schedule-ticker.ts";

/** A process's share of firing schedules: the store it changes them through, and its tickers. */
export interface Scheduling {
  readonly store: ScheduleStore;
  /** Stops the tickers (a tick being fired finishes or is redelivered) and closes what it opened. */
  close(): Promise<void>;
}

/** Options of {@link startScheduling}. */
export interface SchedulingOptions {
  /** Submits the schedules' tasks; default: a task backend of its own over `nc`. */
  tasks?: TaskBackend;
  topology?: WorkerTypeTopologyOptions & StatusTopologyOptions;
  /** Schedules declared outside the protos (taskwire.yaml's), applied as `declaredIn` "taskwire.yaml". */
  declared?: readonly Schedule[];
  /** A tick that could not be fired (it is redelivered a second later), or a failed repair. */
  onError: (error: unknown) => void;
}

/**
 * Fires the schedules of every worker type of `registry`: applies the
 * schedules its protos declare (and `declared`), then pulls each type's ticks.
 * Workers and gateways both run it; each tick is fired by one of them.
 */
export async function startScheduling(
  nc: NatsConnection,
  registry: TaskRegistry,
  options: SchedulingOptions,
): Promise<Scheduling> {
  const tasks = options.tasks ?? (await createNatsTaskBackend({ nc, registry, topology: options.topology }));
  const store = await ScheduleStore.open(nc, registry, tasks, options.topology);
  const types = registry.workerTypes();
  await applyDeclarations(store, registry.definitions.flatMap(declaredSchedules), "proto", types);
  if (options.declared) await applyDeclarations(store, options.declared, "taskwire.yaml", types);
  const js = jetstream(nc, jetStreamOptionsOf(nc));
  const tickers: ScheduleTicker[] = [];
  for (const type of types) tickers.push(await ScheduleTicker.start(js, store, type, options.onError));
  return {
    store,
    close: async () => {
      for (const ticker of tickers) ticker.stop();
      store.close();
      if (!options.tasks) await tasks.close();
    },
  };
}

/**
 * Creates or replaces each declared schedule (left as it is where unchanged),
 * and deletes those declared in the same place before that no longer are.
 */
export async function applyDeclarations(
  store: ScheduleStore,
  schedules: readonly Schedule[],
  declaredIn: string,
  workerTypes: readonly string[],
): Promise<void> {
  for (const schedule of schedules) await store.declareSchedule(schedule, declaredIn);
  const kept = new Set(schedules.map((s) => scheduleKey(s.workerType, s.scheduleId)));
  for (const type of workerTypes) {
    for (const info of await store.listSchedules(type)) {
      const { scheduleId = "" } = info.schedule ?? {};
      if (info.declaredIn === declaredIn && !kept.has(scheduleKey(type, scheduleId)))
        await store.deleteSchedule(type, scheduleId);
    }
  }
}
