import { hostname } from "node:os";
import type { DescMessage } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Registry } from "prom-client";
import { endpointPattern, TaskError, type TaskServiceDefinition } from "../sdk/core/index.ts";
import type { NatsConnectionSettings, StatusTopologyOptions, WorkerTypeTopologyOptions } from "../sdk/nats/index.ts";
import type { BoundMethod } from "./attempt-environment.ts";
import { type TaskMiddleware, withMiddleware } from "./middleware.ts";
import type { ResultEventOptions } from "./result-events.ts";
import type { TaskMethodHandler, TaskServiceImplementation } from "./task-service-implementation.ts";
import type { WorkerEvent } from "./worker-event.ts";
import { WorkerMetrics, workerMetricsRegistry } from "./worker-metrics.ts";

/** Options of {@link createWorker}. */
export interface WorkerOptions {
  /** A server URL or connection settings (the worker connects and closes it), or an open connection (left open). */
  nats: string | NatsConnectionSettings | NatsConnection;
  /**
   * Wait for NATS when it does not answer at start (refused, timed out), trying
   * again until it does and calling this with why on the first try and about once
   * a minute after; a refused login still fails at once. Without it, createWorker
   * fails when NATS does not answer.
   */
  onWaitingForNats?: (reason: string) => void;
  /** The task services to run, from generated `implement<Service>()` functions. */
  services: TaskServiceImplementation[];
  /** Handlers run at once per worker type. @default the service's `(taskwire.v1.worker).concurrency`, else 16 */
  concurrency?: number;
  /** Tasks fetched ahead per priority, waiting for a free handler slot. @default concurrency */
  prefetch?: number;
  /** This worker instance's name, recorded in task statuses. @default "<hostname>-<pid>" */
  workerId?: string;
  /** On close, how long running handlers may take before their signal aborts. @default 30000 */
  shutdownGraceMs?: number;
  /** Coalescing interval of RUNNING and progress status writes. @default 250 */
  statusIntervalMs?: number;
  /** Stream, consumer and bucket options, applied when provisioning. */
  topology?: WorkerTypeTopologyOptions & StatusTopologyOptions;
  /** Background events: finished attempts and faults. @default faults are printed to stderr */
  onEvent?: (event: WorkerEvent) => void;
  /** Runs around every handler call, the first outermost. */
  middleware?: TaskMiddleware[];
  /**
   * Where each terminal outcome is published as a TaskResult event, and a hook
   * that may change it; `false` publishes none (an event costs the worker about
   * 10 µs of CPU per task). @default events on `taskwire.result.<type>`
   */
  results?: ResultEventOptions | false;
  /**
   * The Prometheus registry the worker records its metrics in (docs/operations.md#metrics);
   * `false` records none. @default workerMetricsRegistry
   */
  metrics?: Registry | false;
}

/** A worker type as a worker serves it. */
export interface ServedType {
  readonly definition: TaskServiceDefinition;
  /** The type's rpcs by name, each bound to its handler inside the middleware. */
  readonly methods: ReadonlyMap<string, BoundMethod>;
  readonly concurrency: number;
  readonly prefetch: number;
}

/** {@link WorkerOptions} with every default applied and every value checked. */
export interface ResolvedWorkerOptions {
  readonly nats: string | NatsConnectionSettings | NatsConnection;
  readonly onWaitingForNats: ((reason: string) => void) | undefined;
  readonly types: readonly ServedType[];
  readonly workerId: string;
  readonly shutdownGraceMs: number;
  readonly statusIntervalMs: number;
  readonly topology: (WorkerTypeTopologyOptions & StatusTopologyOptions) | undefined;
  readonly emit: (event: WorkerEvent) => void;
  readonly results: ResultEventOptions | false;
  readonly metrics: WorkerMetrics | undefined;
}

/** The longest delay a Node timer takes: a longer one fires at once. */
const longestTimerMs = 2 ** 31 - 1;

/**
 * Applies the defaults of {@link WorkerOptions} and checks every value, before the
 * worker connects: INVALID_ARGUMENT names the option and the value.
 */
export function resolveWorkerOptions(options: WorkerOptions): ResolvedWorkerOptions {
  if (options.services.length === 0) invalid("createWorker needs at least one task service");
  // The id names this instance in subjects too (broadcast endpoints).
  const workerId = options.workerId ?? `${hostname()}-${process.pid}`.replace(/[^A-Za-z0-9_-]/g, "_");
  if (!endpointPattern.test(workerId)) {
    invalid(`worker id "${workerId}" must be 1 to 64 letters, digits, '-' or '_' (it names the instance in subjects)`);
  }
  const seen = new Set<string>();
  const types = options.services.map((service): ServedType => {
    const { definition } = service;
    if (seen.has(definition.workerType)) invalid(`worker type "${definition.workerType}" is given twice in services`);
    seen.add(definition.workerType);
    const concurrency = count("concurrency", options.concurrency) ?? (definition.concurrency || 16);
    return {
      definition,
      methods: bindMethods(service, options.middleware ?? []),
      concurrency,
      prefetch: count("prefetch", options.prefetch) ?? concurrency,
    };
  });
  return {
    nats: options.nats,
    onWaitingForNats: options.onWaitingForNats,
    types,
    workerId,
    shutdownGraceMs: milliseconds("shutdownGraceMs", options.shutdownGraceMs, 0) ?? 30_000,
    statusIntervalMs: milliseconds("statusIntervalMs", options.statusIntervalMs, 1) ?? 250,
    topology: options.topology,
    emit:
      options.onEvent ??
      ((event) => {
        if (event.type === "error") console.error(`taskwire worker ${workerId}: ${event.error.message}`);
      }),
    results: options.results ?? {},
    metrics: options.metrics === false ? undefined : WorkerMetrics.of(options.metrics ?? workerMetricsRegistry),
  };
}

function bindMethods(service: TaskServiceImplementation, middleware: TaskMiddleware[]): Map<string, BoundMethod> {
  const methods = new Map<string, BoundMethod>();
  const handlers = service.handlers as Record<string, TaskMethodHandler<DescMessage, DescMessage>>;
  for (const [key, method] of Object.entries(service.definition.methods)) {
    const handler = handlers[key];
    if (handler) methods.set(method.name, { method, handler: withMiddleware(middleware, handler) });
  }
  return methods;
}

/** A positive integer option, or undefined when not given. */
function count(name: string, value: number | undefined): number | undefined {
  if (value !== undefined && !(Number.isInteger(value) && value >= 1)) {
    invalid(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/** A duration option from `least` ms to what a timer takes, or undefined when not given. */
function milliseconds(name: string, value: number | undefined, least: number): number | undefined {
  if (value !== undefined && !(value >= least && value <= longestTimerMs)) {
    invalid(`${name} must be from ${least} to ${longestTimerMs} ms, got ${value}`);
  }
  return value;
}

function invalid(message: string): never {
  throw new TaskError(message, Code.InvalidArgument);
}
