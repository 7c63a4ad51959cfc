import { setTimeout as sleep } from "node:timers/promises";
import {
  type ConsumerConfig,
  JetStreamApiError,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { millis } from "@nats-io/transport-node";

/**
 * How provisioning treats a setting (replicas, ack_wait, limits, storage) that
 * differs from the one in place:
 * - "keep", what every process does at start-up: what exists stays as it is; a
 *   setting the process asked for explicitly, and that differs, is reported. One
 *   exception: a setting in place that its creator did not ask for (a default,
 *   recorded in the metadata key {@link defaultedKey}) takes the value asked for;
 * - "plan": nothing is changed; every setting that differs from the one asked
 *   for (or its default) is reported (`taskwire migrate --dry-run`);
 * - "apply": those settings are changed, and reported (`taskwire migrate`).
 *
 * What Taskwire's own code relies on (subjects, retention, republish, and such)
 * is brought up to date in every mode but "plan".
 */
export type ProvisionMode = "keep" | "plan" | "apply";

/** A setting asked for that differs from the one in place. */
export interface SettingDifference {
  /** What it is a setting of: `stream TASKS_hasher`, `consumer TASKS_hasher > hasher_normal`, `bucket taskwire_status`. */
  readonly resource: string;
  /** The setting, as taskwire.yaml and the proto options name it: `replicas`, `ack_wait`, ... */
  readonly setting: string;
  /** Its value in place. */
  readonly existing: string;
  /** The value asked for. */
  readonly asked: string;
  /**
   * What was done: kept as it is; taken up (the one in place was a default, and
   * this process asks for its own); to be changed (a plan); changed (migrate);
   * or left (it cannot change in place).
   */
  readonly outcome: "kept" | "adopted" | "planned" | "changed" | "unchangeable";
}

/** How a provisioning call treats what is in place (see {@link ProvisionMode}). */
export interface ProvisionContext {
  readonly mode: ProvisionMode;
  /** Told of each setting that differs. */
  readonly report: (difference: SettingDifference) => void;
}

/** What this process has warned of already: a reconnect or a second client provisions again. */
const warned = new Set<string>();

/**
 * The default context: keep what exists, and say so once per setting with a
 * Node process warning (on stderr unless the process turned warnings off).
 */
export const keepAndWarn: ProvisionContext = {
  mode: "keep",
  report: (difference) => {
    const message = describeDifference(difference);
    if (warned.has(message)) return;
    warned.add(message);
    process.emitWarning(message, { code: "TASKWIRE_SETTING", type: "TaskwireWarning" });
  },
};

/** One line for an operator: the resource, both values, and what was done or can be. */
export function describeDifference(d: SettingDifference): string {
  if (d.setting === "stream") return `${d.resource}: missing; taskwire migrate would create it`;
  const what = `${d.resource}: ${d.setting} is ${d.existing}`;
  switch (d.outcome) {
    case "kept":
      return `${what}; this process asks for ${d.asked} and keeps ${d.existing}. To change it on purpose: taskwire migrate`;
    case "planned":
      return `${what}; taskwire migrate would make it ${d.asked}`;
    case "adopted":
      return `${d.resource}: ${d.setting} changed from ${d.existing} (a default) to ${d.asked}, as this process asks`;
    case "changed":
      return `${d.resource}: ${d.setting} changed from ${d.existing} to ${d.asked}`;
    case "unchangeable":
      return `${what}, asked for ${d.asked}: it cannot change in place (move the data to a new stream, then delete this one)`;
  }
}

/** A stream or consumer as provisioning wants it. */
interface Spec<C> {
  /** The whole configuration a new one gets. */
  readonly config: C;
  /** The keys of `config` that are settings (the rest is what the code relies on). */
  readonly settings: readonly (keyof C)[];
  /** Of those, the ones this process asked for explicitly (not defaults). */
  readonly explicit: ReadonlySet<keyof C>;
}

/** A stream as provisioning wants it. */
export type StreamSpec = Spec<Partial<StreamConfig> & { name: string }>;

/**
 * Creates a stream (with `create`, by default from its configuration), or
 * brings the one in place to `spec` as `context` says.
 */
export async function ensureStream(
  jsm: JetStreamManager,
  spec: StreamSpec,
  context: ProvisionContext,
  create: (metadata: Record<string, string>) => Promise<unknown> = (metadata) =>
    jsm.streams.add({ ...spec.config, metadata }),
): Promise<void> {
  const { config } = spec;
  const info = await inPlaceOrCreate(
    context,
    () => streamInfo(jsm, config.name),
    () => create(defaultedMetadata(spec.settings, spec.explicit)),
    () =>
      context.report({
        resource: `stream ${config.name}`,
        setting: "stream",
        existing: "missing",
        asked: "created",
        outcome: "planned",
      }),
  );
  if (!info) return;
  const existing = info.config as unknown as Record<string, unknown>;
  const update = changes(`stream ${config.name}`, existing, config, spec.settings, spec.explicit, context, ["storage"]);
  if (update) await jsm.streams.update(config.name, { ...info.config, ...update });
}

/** A durable consumer of `stream` as provisioning wants it. */
export interface ConsumerSpec extends Spec<Partial<ConsumerConfig> & { durable_name: string }> {
  readonly stream: string;
}

/** Creates a durable consumer, or brings the one in place to `spec` as `context` says; a pause stays. */
export async function ensureConsumer(
  jsm: JetStreamManager,
  spec: ConsumerSpec,
  context: ProvisionContext,
): Promise<void> {
  const { stream, config } = spec;
  const name = config.durable_name;
  const current = await inPlaceOrCreate(
    context,
    () =>
      jsm.consumers.info(stream, name).catch((error: unknown) => {
        if (isNotFound(error)) return undefined;
        throw error;
      }),
    () => jsm.consumers.add(stream, { ...config, metadata: defaultedMetadata(spec.settings, spec.explicit) }),
    () => {},
  );
  if (!current) return;
  const existing = current.config as unknown as Record<string, unknown>;
  const update = changes(`consumer ${stream} > ${name}`, existing, config, spec.settings, spec.explicit, context, []);
  if (update) {
    await jsm.consumers.update(stream, name, {
      ...current.config,
      ...update,
      pause_until: current.config.pause_until,
    } as Partial<ConsumerConfig>);
  }
}

/**
 * What is in place; or, when nothing is, undefined once `create` made it (in a
 * plan, once `planned` said it would). Another process may create it first,
 * perhaps with other settings: then the one in place.
 */
async function inPlaceOrCreate<T>(
  context: ProvisionContext,
  find: () => Promise<T | undefined>,
  create: () => Promise<unknown>,
  planned: () => void,
): Promise<T | undefined> {
  const found = await find();
  if (found) return found;
  if (context.mode === "plan") return void planned();
  for (let tries = 1; ; tries++) {
    try {
      await create();
      return undefined;
    } catch (error) {
      // A cluster starting, or a node restarting, has peers its leader does not see yet.
      if (isPeerOffline(error) && tries < placementTries) {
        await sleep(500);
        continue;
      }
      if (!isAlreadyInUse(error)) throw error;
      const again = await find();
      if (!again) throw error;
      return again;
    }
  }
}

/** Tries at creating a replicated stream whose peers are not all seen yet: 15 s. */
const placementTries = 30;

// JetStream answers 10005 "no suitable peers for placement" (with "peer offline"
// while a peer is down or not yet known to the meta leader).
function isPeerOffline(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.code === 10005 && /offline/i.test(error.message);
}

/**
 * The fields of `wanted` to write over `existing`: what the code relies on,
 * always (but in a plan); settings only when applying. Reports each setting
 * that differs, as the context's mode says.
 */
function changes(
  resource: string,
  existing: Record<string, unknown>,
  wanted: object,
  settings: readonly string[],
  explicit: ReadonlySet<string>,
  context: ProvisionContext,
  unchangeable: readonly string[],
): Record<string, unknown> | undefined {
  const update: Record<string, unknown> = {};
  const metadata = (existing.metadata ?? {}) as Record<string, string>;
  const defaulted = new Set((metadata[defaultedKey] ?? "").split(",").filter((key) => key !== ""));
  const before = defaulted.size;
  for (const [key, value] of Object.entries(wanted)) {
    if (same(existing[key], value)) continue;
    if (!settings.includes(key)) {
      if (context.mode !== "plan") update[key] = value;
      continue;
    }
    if (context.mode === "keep" && !explicit.has(key)) continue;
    const outcome = unchangeable.includes(key)
      ? "unchangeable"
      : context.mode === "keep"
        ? defaulted.has(key)
          ? "adopted"
          : "kept"
        : context.mode === "plan"
          ? "planned"
          : "changed";
    context.report({
      resource,
      setting: settingName(key),
      existing: shown(key, existing[key]),
      asked: shown(key, value),
      outcome,
    });
    if (outcome === "adopted" || outcome === "changed") {
      update[key] = value;
      defaulted.delete(key);
    }
  }
  if (defaulted.size !== before) update.metadata = { ...metadata, [defaultedKey]: [...defaulted].join(",") };
  return Object.keys(update).length > 0 ? update : undefined;
}

/**
 * The metadata key listing the settings a stream or consumer was created with
 * by default (not asked for): a later process that asks for its own value of
 * one of them takes it. A stream without the key (made before it existed) is
 * treated as asked for throughout.
 */
export const defaultedKey = "taskwire.defaulted";

/** The metadata a new stream or consumer records: which of its settings are defaults. */
export function defaultedMetadata(settings: readonly string[], explicit: ReadonlySet<string>): Record<string, string> {
  return { [defaultedKey]: settings.filter((key) => !explicit.has(key)).join(",") };
}

/** Taskwire's names of the server's settings, as taskwire.yaml and the proto options spell them. */
const settingNames: Record<string, string> = {
  num_replicas: "replicas",
  max_msgs: "max_queued",
  max_msg_size: "max message bytes",
  duplicate_window: "duplicate window",
  max_age: "max age",
  ack_wait: "ack_wait",
  storage: "storage",
};

function settingName(key: string): string {
  return settingNames[key] ?? key;
}

const durations = new Set(["duplicate_window", "max_age", "ack_wait"]);

function shown(key: string, value: unknown): string {
  if (value === undefined || value === null) return "unset";
  if (durations.has(key) && typeof value === "number") return value === 0 ? "none" : `${millis(value)} ms`;
  if (key === "max_msgs" || key === "max_msg_size") return value === -1 ? "unlimited" : String(value);
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

/** Equal as the server keeps it: an absent field is its zero value. */
function same(a: unknown, b: unknown): boolean {
  const zero = (v: unknown) => v === undefined || v === null || v === false || v === 0 || v === "";
  if (zero(a) || zero(b)) return zero(a) && zero(b);
  return JSON.stringify(a) === JSON.stringify(b);
}

async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

// JetStream: 10059 stream not found, 10014 consumer not found.
function isNotFound(error: unknown): boolean {
  return error instanceof JetStreamApiError && (error.code === 10059 || error.code === 10014);
}

// JetStream answers "already in use" (10058 stream, 10148 consumer) when the name
// exists with another configuration.
function isAlreadyInUse(error: unknown): boolean {
  return error instanceof JetStreamApiError && (error.code === 10058 || error.code === 10148);
}
