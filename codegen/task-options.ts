import { type DescFile, type DescMethod, type DescService, getOption, hasOption } from "@bufbuild/protobuf";
import type { Duration } from "@bufbuild/protobuf/wkt";
import {
  field as fieldOption,
  type KeyLimits,
  type Retention,
  Storage,
  type TaskOptions,
  task,
  worker,
} from "../gen/taskwire/v1/options_pb.ts";
import { DeliveryMode, Priority, type RetryPolicy } from "../gen/taskwire/v1/task_pb.ts";
import { type KeyLimitSettings, type RetentionSettings, searchableKind, type TaskDefaults } from "../sdk/core/index.ts";
import { PluginError } from "./plugin-error.ts";

/** The worker option of a service, or undefined when it is not a task service. */
export interface WorkerSettings {
  readonly workerType: string;
  readonly concurrency: number;
  readonly maxConcurrency: number;
  readonly maxRate: number;
  readonly maxQueued: number;
  readonly storage: "file" | "memory";
  readonly replicas: number;
  readonly retention: RetentionSettings;
  readonly keyLimits: KeyLimitSettings;
}

const workerTypePattern = /^[a-z][a-z0-9_-]{0,63}$/;

/** Reads and checks `(taskwire.v1.worker)`; undefined for services without it. */
export function workerSettings(service: DescService): WorkerSettings | undefined {
  if (!hasOption(service, worker)) return undefined;
  const options = getOption(service, worker);
  if (!options.type) throw new PluginError(service, `${service.typeName}: (taskwire.v1.worker).type is required`);
  if (!workerTypePattern.test(options.type)) {
    throw new PluginError(
      service,
      `${service.typeName}: worker type "${options.type}" must match ${workerTypePattern} (it becomes part of NATS subjects)`,
    );
  }
  for (const method of service.methods) {
    if (method.methodKind !== "unary") {
      throw new PluginError(
        method,
        `${method.parent.typeName}.${method.name} is ${method.methodKind.replace("_", "-")}: task rpcs must be unary`,
      );
    }
  }
  for (const method of service.methods) {
    for (const field of method.input.fields) {
      if (!hasOption(field, fieldOption) || !getOption(field, fieldOption).searchable) continue;
      const why = searchableKind(field);
      if (why) {
        throw new PluginError(
          method,
          `${method.input.typeName}.${field.name}: (taskwire.v1.field).searchable needs a singular string, integer, bool or enum field, but ${why}`,
        );
      }
    }
  }
  if (!(options.maxRate >= 0) || !Number.isFinite(options.maxRate)) {
    throw new PluginError(service, `${service.typeName}: (taskwire.v1.worker).max_rate must be zero or more`);
  }
  if (![0, 1, 3, 5].includes(options.replicas)) {
    throw new PluginError(
      service,
      `${service.typeName}: (taskwire.v1.worker).replicas must be 1, 3 or 5 (or unset), got ${options.replicas}`,
    );
  }
  return {
    workerType: options.type,
    concurrency: options.concurrency,
    maxConcurrency: options.maxConcurrency,
    maxRate: options.maxRate,
    maxQueued: Number(options.maxQueued),
    storage: options.storage === Storage.MEMORY ? "memory" : "file",
    replicas: options.replicas,
    retention: retentionSettings(service, options.retention),
    keyLimits: keyLimitSettings(service, options.keyLimits),
  };
}

/** `(taskwire.v1.worker).key_limits`; unset fields are left out. */
function keyLimitSettings(service: DescService, limits: KeyLimits | undefined): KeyLimitSettings {
  if (!limits) return {};
  if (!(limits.maxRate >= 0) || !Number.isFinite(limits.maxRate))
    throw new PluginError(
      service,
      `${service.typeName}: (taskwire.v1.worker).key_limits.max_rate must be zero or more`,
    );
  return {
    ...(limits.maxConcurrency ? { maxConcurrency: limits.maxConcurrency } : {}),
    ...(limits.maxRate ? { maxRate: limits.maxRate } : {}),
  };
}

/** `(taskwire.v1.worker).retention` in the SDK's units; unset fields are left out. */
function retentionSettings(service: DescService, retention: Retention | undefined): RetentionSettings {
  if (!retention) return {};
  const where = `${service.typeName}: (taskwire.v1.worker).retention`;
  return {
    ...(retention.status ? { statusTtlMs: positiveMs(service, retention.status, `${where}.status`) } : {}),
    ...(retention.deadLetters
      ? { deadLetterTtlMs: positiveMs(service, retention.deadLetters, `${where}.dead_letters`) }
      : {}),
    ...(retention.maxResultBytes ? { maxResultBytes: retention.maxResultBytes } : {}),
  };
}

/**
 * The defaults of a task method: the service's `defaults`, overridden field by
 * field (the retry policy too) by the method's `(taskwire.v1.task)`, in the SDK's
 * units (milliseconds, names). Unset fields are left out.
 */
export function taskDefaults(method: DescMethod): TaskDefaults {
  const service = getOption(method.parent, worker).defaults;
  const own = hasOption(method, task) ? getOption(method, task) : undefined;
  const merged: TaskDefaults = {};
  for (const options of [service, own]) {
    if (!options) continue;
    Object.assign(merged, convert(method, options, merged));
  }
  return merged;
}

function convert(method: DescMethod, options: TaskOptions, base: TaskDefaults): TaskDefaults {
  const out: TaskDefaults = {};
  const where = `${method.parent.typeName}.${method.name}`;
  if (options.timeout) out.timeoutMs = positiveMs(method, options.timeout, `${where}: timeout`);
  if (options.expiresAfter) out.expiresAfterMs = positiveMs(method, options.expiresAfter, `${where}: expires_after`);
  if (options.priority !== Priority.UNSPECIFIED) out.priority = priorityName(options.priority);
  if (options.delivery !== DeliveryMode.UNSPECIFIED)
    out.delivery = options.delivery === DeliveryMode.BROADCAST ? "broadcast" : "queue";
  if (options.retry) out.retry = { ...base.retry, ...retry(method, options.retry, where) };
  if (options.debounce) out.debounceMs = positiveMs(method, options.debounce, `${where}: debounce`);
  if (options.singleton) out.singleton = true;
  return out;
}

function retry(method: DescMethod, policy: RetryPolicy, where: string): TaskDefaults["retry"] {
  const out: NonNullable<TaskDefaults["retry"]> = {};
  if (policy.maxAttempts) out.maxAttempts = policy.maxAttempts;
  if (policy.initialBackoff)
    out.initialBackoffMs = positiveMs(method, policy.initialBackoff, `${where}: retry.initial_backoff`);
  if (policy.maxBackoff) out.maxBackoffMs = positiveMs(method, policy.maxBackoff, `${where}: retry.max_backoff`);
  if (policy.multiplier) {
    if (policy.multiplier < 1)
      throw new PluginError(method, `${where}: retry.multiplier must be at least 1, got ${policy.multiplier}`);
    out.multiplier = policy.multiplier;
  }
  if (policy.jitter) {
    if (policy.jitter < 0 || policy.jitter > 1)
      throw new PluginError(method, `${where}: retry.jitter must be in [0, 1], got ${policy.jitter}`);
    out.jitter = policy.jitter;
  }
  return out;
}

function positiveMs(method: DescMethod | DescService, duration: Duration, what: string): number {
  const ms = Number(duration.seconds) * 1000 + Math.round(duration.nanos / 1e6);
  if (ms <= 0) throw new PluginError(method, `${what} must be positive, got ${ms}ms`);
  return ms;
}

function priorityName(priority: Priority): "high" | "normal" | "low" {
  if (priority === Priority.HIGH) return "high";
  if (priority === Priority.LOW) return "low";
  return "normal";
}

/**
 * The settings of every task service of `files` (every file of a request, not
 * only those generated now), checked as each generator checks them: a worker
 * type claimed twice, a bad `(taskwire.v1.worker)` or method option is refused,
 * naming the proto element.
 */
export function claimWorkerTypes(files: Iterable<DescFile>): Map<DescService, WorkerSettings> {
  const claimed = new Map<string, DescService>();
  const settings = new Map<DescService, WorkerSettings>();
  for (const file of files) {
    for (const service of file.services) {
      const s = workerSettings(service);
      if (!s) continue;
      const other = claimed.get(s.workerType);
      if (other) {
        throw new PluginError(
          service,
          `worker type "${s.workerType}" is already claimed by ${other.typeName} (${other.file.name}.proto)`,
        );
      }
      claimed.set(s.workerType, service);
      settings.set(service, s);
      for (const method of service.methods) taskDefaults(method);
    }
  }
  return settings;
}
