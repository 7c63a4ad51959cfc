import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { parse } from "yaml";
import type { RetentionSettings } from "../sdk/core/index.ts";
import type { GatewayAuthOptions, GatewayLimits, GatewayTlsFiles } from "../server/index.ts";
import type { PoolOptions, SupervisorOptions } from "../worker-runtime/index.ts";
import { httpWorkerModule } from "../worker-runtime/index.ts";
import { mapping, parseGatewayAuth } from "./gateway-auth-config.ts";
import { type NatsConfig, parseNatsConfig } from "./nats-config.ts";

/** taskwire.yaml, resolved: paths absolute, defaults filled. */
export interface TaskwireConfig {
  /** The file it was read from. */
  readonly path: string;
  readonly nats: NatsConfig;
  readonly gateway: {
    /** @default "127.0.0.1" */
    readonly host: string;
    /** @default 8080 */
    readonly port: number;
    /** Generated `*_taskwire.ts` modules whose task services the gateway accepts. */
    readonly services: string[];
    /** Who may call the gateway (docs/security.md); absent, it is open (loopback only). */
    readonly auth: GatewayAuthOptions | undefined;
    /** What one client can hold of the gateway (docs/security.md); the gateway checks the values. */
    readonly limits: GatewayLimits;
    /** Host names requests may carry. @default loopback names on a loopback host, any otherwise */
    readonly allowedHosts: string[] | undefined;
    /** TLS files (absolute paths): the gateway serves https. */
    readonly tls: GatewayTlsFiles | undefined;
    /** Whether the gateway serves the web console at /. @default true */
    readonly console: boolean;
  };
  /** What finished tasks leave in the broker, for how long (docs/operations.md); a type's own retention wins. */
  readonly retention: RetentionSettings;
  /** Schedules the gateway declares (docs/operations.md#schedules), checked against the types when it starts. */
  readonly schedules: readonly ConfiguredSchedule[];
  readonly worker: {
    /** @default 30000 */
    readonly shutdownGraceMs: number;
    /**
     * Ack wait of the consumers: a task held this long without a heartbeat is
     * redelivered. Unset: the one in place, else 30000 (`taskwire migrate` applies 30000).
     */
    readonly ackWaitMs: number | undefined;
    /** How the supervisor restarts crashed processes, and when it gives one up (see SupervisorOptions). */
    readonly restarts: Pick<
      SupervisorOptions,
      "restartBackoffMs" | "maxRestartBackoffMs" | "crashLoopLimit" | "crashLoopWindowMs"
    >;
    readonly pools: PoolOptions[];
    /** Where the supervisor serves its processes' Prometheus metrics; absent, `taskwire worker` serves none. */
    readonly metrics: { readonly host: string; readonly port: number } | undefined;
  };
}

/** One entry of taskwire.yaml's `schedules`, its shape checked (its task and spec are checked at start). */
export interface ConfiguredSchedule {
  /** Where it is written, for errors: "taskwire.yaml: schedules[0]". */
  readonly where: string;
  readonly id: string;
  readonly workerType: string;
  readonly method: string;
  readonly cron: string;
  readonly timeZone: string;
  readonly everyMs: number | undefined;
  readonly startAt: Date | undefined;
  readonly endAt: Date | undefined;
  readonly jitterMs: number | undefined;
  readonly overlap: "skip" | "buffer_one" | "allow_all" | undefined;
  readonly catchupWindowMs: number | undefined;
  /** The request, in Protobuf JSON. */
  readonly payload: unknown;
  readonly description: string;
}

/**
 * Reads and validates taskwire.yaml. Every error names the file and the key.
 */
export async function loadConfig(path: string): Promise<TaskwireConfig> {
  const file = resolve(path);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new Error(`cannot read config ${file}: ${(error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (error) {
    throw new Error(`${file} is not valid YAML: ${(error as Error).message}`);
  }
  const root = dirname(file);
  const fail = (key: string, problem: string): never => {
    throw new Error(`${file}: ${key} ${problem}`);
  };
  /** A mapping (empty when absent); with `known`, a key it does not list is refused, naming it. */
  const obj = (value: unknown, key: string, known?: readonly string[]): Record<string, unknown> => {
    if (value === undefined || value === null) return {};
    return known ? mapping(value, key, known, fail) : mapping(value, key, Object.keys(value as object), fail);
  };
  const str = (value: unknown, key: string, fallback?: string): string => {
    if (value === undefined || value === null) return fallback ?? fail(key, "is required");
    if (typeof value !== "string" || value === "") return fail(key, "must be a non-empty string");
    return value;
  };
  const int = (value: unknown, key: string, fallback: number, min = 1): number => {
    if (value === undefined || value === null) return fallback;
    if (typeof value !== "number" || !Number.isInteger(value) || value < min)
      return fail(key, `must be an integer >= ${min}`);
    return value;
  };
  const list = (value: unknown, key: string): unknown[] => {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) return fail(key, "must be a list");
    return value;
  };

  /**
   * A pool's language, handler module and command (docs/operations.md): a
   * TypeScript or Python pool loads a module; a Python or Go pool runs a
   * command, whose program is a path from the config's folder when it has a
   * `/` and is looked up on PATH when not.
   */
  /**
   * A pool's extra environment (PYTHONPATH, a handler's own settings): names as the shell
   * writes them, values strings, never a TASKWIRE_ variable (the supervisor sets those).
   */
  const poolEnv = (value: unknown, key: string): Record<string, string> => {
    const env: Record<string, string> = {};
    for (const [name, v] of Object.entries(obj(value, key))) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) fail(key, `has "${name}", which is not a variable name`);
      if (name.startsWith("TASKWIRE_")) fail(`${key}.${name}`, "is set by the supervisor itself");
      if (typeof v !== "string" && typeof v !== "number") fail(`${key}.${name}`, "must be a string");
      env[name] = String(v);
    }
    return env;
  };

  const languages = ["typescript", "python", "go"] as const;
  const languagePool = (
    pool: Record<string, unknown>,
    key: string,
  ): Pick<PoolOptions, "language" | "module" | "command"> => {
    const named = pool.language === undefined ? "typescript" : str(pool.language, `${key}.language`);
    const language =
      languages.find((l) => l === named) ?? fail(`${key}.language`, `must be typescript, python or go, got "${named}"`);
    const module = pool.module === undefined ? undefined : str(pool.module, `${key}.module`);
    const words =
      pool.command === undefined
        ? undefined
        : typeof pool.command === "string"
          ? [pool.command]
          : list(pool.command, `${key}.command`).map((w, i) => str(w, `${key}.command[${i}]`));
    if (language === "go") {
      if (module !== undefined) fail(`${key}.module`, "a Go pool has no module: its command is the worker binary");
      if (!words?.length) fail(`${key}.command`, "a Go pool needs the worker binary to run, e.g. [./bin/worker]");
    } else if (module === undefined) {
      fail(`${key}.module`, `a ${language === "python" ? "Python" : "TypeScript"} pool needs its handler module`);
    } else if (language === "typescript" && words) {
      fail(`${key}.command`, "is for Python and Go pools: set language too");
    }
    // A Python module is a file path (resolved) or a dotted module name (kept).
    const resolvedModule =
      module === undefined
        ? undefined
        : language === "python" && !/[/\\]|\.py$/.test(module)
          ? module
          : resolve(root, module);
    const command = words?.map((w, i) => (i === 0 && w.includes("/") ? resolve(root, w) : w));
    return {
      ...(language === "typescript" ? {} : { language }),
      ...(resolvedModule ? { module: resolvedModule } : {}),
      ...(command ? { command } : {}),
    };
  };

  /** gateway.tls: cert, key and an optional clientCa, paths from the file's folder. */
  const gatewayTls = (value: unknown): GatewayTlsFiles | undefined => {
    if (value === undefined || value === null) return undefined;
    const tls = mapping(value, "gateway.tls", ["cert", "key", "clientCa"], fail);
    return {
      cert: resolve(root, str(tls.cert, "gateway.tls.cert")),
      key: resolve(root, str(tls.key, "gateway.tls.key")),
      ...(tls.clientCa !== undefined ? { clientCa: resolve(root, str(tls.clientCa, "gateway.tls.clientCa")) } : {}),
    };
  };

  /** A duration: "30s", "15m", "12h", "7d", or 0 (forever). */
  const duration = (value: unknown, key: string): number => {
    if (value === 0) return 0;
    const match = typeof value === "string" ? /^(\d+)(ms|s|m|h|d)$/.exec(value) : null;
    if (!match)
      return fail(
        key,
        `must be a duration such as "30s", "15m", "12h" or "7d" (0: forever), got ${JSON.stringify(value)}`,
      );
    const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as "ms"];
    return Number(match[1]) * unit;
  };

  /** worker.metrics.port: required, a TCP port (0: any free one). */
  const metricsPort = (value: unknown): number => {
    const key = "worker.metrics.port";
    if (value === undefined || value === null) return fail(key, "is required: the port Prometheus scrapes, e.g. 9464");
    const port = int(value, key, 0, 0);
    return port > 65_535 ? fail(key, `must be a port from 0 to 65535, got ${port}`) : port;
  };

  const top = obj(raw, "the document", ["nats", "gateway", "worker", "retention", "schedules"]);
  const instant = (value: unknown, key: string): Date | undefined => {
    if (value === undefined || value === null) return undefined;
    const date = value instanceof Date ? value : new Date(typeof value === "string" ? value : Number.NaN);
    return Number.isNaN(date.getTime()) ? fail(key, 'must be an RFC 3339 time such as "2027-01-01T00:00:00Z"') : date;
  };
  const schedules = list(top.schedules, "schedules").map((value, i): ConfiguredSchedule => {
    const key = `schedules[${i}]`;
    const entry = obj(value, key, [
      "id",
      "task",
      "cron",
      "timeZone",
      "every",
      "startAt",
      "endAt",
      "jitter",
      "overlap",
      "catchupWindow",
      "payload",
      "description",
    ]);
    const task = str(entry.task, `${key}.task`);
    const [workerType, method, ...rest] = task.split("/");
    if (!workerType || !method || rest.length > 0)
      fail(`${key}.task`, `must be "<worker type>/<Method>", e.g. "reports/Generate", got "${task}"`);
    const overlap = entry.overlap;
    if (overlap !== undefined && !["skip", "buffer_one", "allow_all"].includes(overlap as string))
      fail(`${key}.overlap`, `must be skip, buffer_one or allow_all, got ${JSON.stringify(overlap)}`);
    const optionalDuration = (v: unknown, k: string) => (v === undefined ? undefined : duration(v, `${key}.${k}`));
    return {
      where: `${file}: ${key}`,
      id: str(entry.id, `${key}.id`),
      workerType: workerType as string,
      method: method as string,
      cron: entry.cron === undefined ? "" : str(entry.cron, `${key}.cron`),
      timeZone: entry.timeZone === undefined ? "" : str(entry.timeZone, `${key}.timeZone`),
      everyMs: optionalDuration(entry.every, "every"),
      startAt: instant(entry.startAt, `${key}.startAt`),
      endAt: instant(entry.endAt, `${key}.endAt`),
      jitterMs: optionalDuration(entry.jitter, "jitter"),
      overlap: overlap as ConfiguredSchedule["overlap"],
      catchupWindowMs: optionalDuration(entry.catchupWindow, "catchupWindow"),
      payload: entry.payload ?? {},
      description: entry.description === undefined ? "" : str(entry.description, `${key}.description`),
    };
  });
  const retention = obj(top.retention, "retention", ["status", "deadLetters", "maxResultBytes"]);
  const nats = parseNatsConfig(top.nats, file);
  const gateway = obj(top.gateway, "gateway", [
    "host",
    "port",
    "services",
    "auth",
    "limits",
    "tls",
    "allowedHosts",
    "console",
  ]);
  const worker = obj(top.worker, "worker", [
    "shutdownGraceMs",
    "ackWaitMs",
    "restartBackoffMs",
    "maxRestartBackoffMs",
    "crashLoopLimit",
    "crashLoopWindowMs",
    "pools",
    "metrics",
  ]);
  const metrics = worker.metrics === undefined ? undefined : obj(worker.metrics, "worker.metrics", ["host", "port"]);
  const services = list(gateway.services, "gateway.services").map((s, i) =>
    resolve(root, str(s, `gateway.services[${i}]`)),
  );
  const poolNames = new Set<string>();
  const pools = list(worker.pools, "worker.pools").map((entry, i) => {
    const key = `worker.pools[${i}]`;
    const pool = obj(entry, key, [
      "name",
      "language",
      "module",
      "command",
      "http",
      "processes",
      "concurrency",
      "user",
      "group",
      "env",
    ]);
    const name = str(pool.name, `${key}.name`);
    if (!/^[a-z][a-z0-9_-]*$/.test(name))
      fail(`${key}.name`, `"${name}" must be lower case letters, digits, '-' or '_'`);
    if (poolNames.has(name)) fail(`${key}.name`, `"${name}" is used by two pools`);
    poolNames.add(name);
    // An HTTP executor pool: POSTs each task to a URL per "<type>/<Method>" instead of a handler module.
    const http = pool.http === undefined ? undefined : obj(pool.http, `${key}.http`);
    if (http && (pool.module !== undefined || pool.language !== undefined || pool.command !== undefined))
      fail(key, "has http with module, language or command: an HTTP pool runs no handlers of its own");
    const targets: Record<string, string> = {};
    for (const [target, url] of Object.entries(http ?? {})) {
      if (!/^[a-z][a-z0-9_-]*\/[A-Za-z][A-Za-z0-9]*$/.test(target))
        fail(`${key}.http`, `key "${target}" must be <worker type>/<Method>`);
      targets[target] = str(url, `${key}.http.${target}`);
    }
    const env = {
      ...poolEnv(pool.env, `${key}.env`),
      ...(http
        ? { TASKWIRE_HTTP_TARGETS: JSON.stringify(targets), TASKWIRE_HTTP_SERVICES: JSON.stringify(services) }
        : {}),
    };
    return {
      name,
      ...(http ? { module: httpWorkerModule } : languagePool(pool, key)),
      ...(Object.keys(env).length ? { env } : {}),
      processes: int(pool.processes, `${key}.processes`, 1),
      ...(pool.concurrency !== undefined ? { concurrency: int(pool.concurrency, `${key}.concurrency`, 1) } : {}),
      ...(pool.user !== undefined ? { user: str(pool.user, `${key}.user`) } : {}),
      ...(pool.group !== undefined ? { group: str(pool.group, `${key}.group`) } : {}),
    };
  });
  return {
    path: file,
    nats,
    gateway: {
      host: str(gateway.host, "gateway.host", "127.0.0.1"),
      port: int(gateway.port, "gateway.port", 8080, 0),
      services,
      auth: parseGatewayAuth(gateway.auth, root, fail),
      limits: obj(gateway.limits, "gateway.limits") as GatewayLimits,
      tls: gatewayTls(gateway.tls),
      allowedHosts:
        gateway.allowedHosts === undefined
          ? undefined
          : list(gateway.allowedHosts, "gateway.allowedHosts").map((h, i) => str(h, `gateway.allowedHosts[${i}]`)),
      console:
        gateway.console === undefined || gateway.console === null
          ? true
          : typeof gateway.console === "boolean"
            ? gateway.console
            : fail("gateway.console", "must be true or false (false: the gateway serves no console)"),
    },
    retention: {
      ...(retention.status !== undefined ? { statusTtlMs: duration(retention.status, "retention.status") } : {}),
      ...(retention.deadLetters !== undefined
        ? { deadLetterTtlMs: duration(retention.deadLetters, "retention.deadLetters") }
        : {}),
      ...(retention.maxResultBytes !== undefined
        ? { maxResultBytes: int(retention.maxResultBytes, "retention.maxResultBytes", 0, 1) }
        : {}),
    },
    schedules,
    worker: {
      shutdownGraceMs: int(worker.shutdownGraceMs, "worker.shutdownGraceMs", 30_000, 0),
      ackWaitMs: worker.ackWaitMs === undefined ? undefined : int(worker.ackWaitMs, "worker.ackWaitMs", 30_000, 100),
      restarts: Object.fromEntries(
        (
          [
            ["restartBackoffMs", 1],
            ["maxRestartBackoffMs", 1],
            ["crashLoopLimit", 0],
            ["crashLoopWindowMs", 1],
          ] as const
        )
          .filter(([key]) => worker[key] !== undefined)
          .map(([key, min]) => [key, int(worker[key], `worker.${key}`, 0, min)]),
      ),
      pools,
      metrics: metrics && {
        host: str(metrics.host, "worker.metrics.host", "127.0.0.1"),
        port: metricsPort(metrics.port),
      },
    },
  };
}
