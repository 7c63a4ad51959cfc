#!/usr/bin/env node
/**
 * The `taskwire` command.
 *
 *   taskwire init [directory]    a new project: proto, handler, client, test, taskwire.yaml
 *   taskwire dev [--cluster N]   nats-server (or a cluster of N) + gateway + workers of taskwire.yaml
 *   taskwire gateway             the Connect gateway
 *   taskwire worker              the worker supervisor
 *   taskwire submit <type>/<Method> --json '{...}' [--wait]
 *   taskwire submit <type>/<Method> --from tasks.jsonl [--checkpoint NAME]
 *   taskwire status <id>
 *   taskwire watch <id>
 *   taskwire tasks list|get|cancel       tasks: list and filter, one in full, cancel
 *   taskwire queues list|pause|resume|purge
 *   taskwire dlq list|show|retry|purge   dead letters
 *   taskwire workers [--type T]          live worker instances
 *   taskwire schedules list|show|create|pause|resume|trigger|preview|delete
 *   taskwire migrate [--dry-run]
 *
 * Common flags: --config <file> (default taskwire.yaml), --gateway <url>; the
 * operations (tasks, queues, dlq, workers) print tables, or JSON with --json,
 * and their destructive commands ask first at a terminal, or take --yes. They
 * exit 0 done, 1 failed, 2 wrong usage or not confirmed (nothing done); the
 * other commands 0 or 1.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { ConnectError } from "@connectrpc/connect";
import { flushTraces } from "../sdk/core/index.ts";
import { startNatsCluster, startNatsServer } from "../testing/index.ts";
import type { Supervisor } from "../worker-runtime/index.ts";
import { createApiKey } from "./api-key.ts";
import {
  type ClientTarget,
  runGateway,
  runWorkers,
  type Stoppable,
  serveWorkerMetrics,
  statusCommand,
  submitCommand,
  submitFileCommand,
  targetOfConfig,
  targetOfGateway,
  watchCommand,
} from "./commands.ts";
import { buildConsoleIfStale } from "./console-build.ts";
import { devBanner } from "./dev-banner.ts";
import { initProject } from "./init-project.ts";
import { loadConfig, type TaskwireConfig } from "./load-config.ts";
import { migrate } from "./migrate.ts";
import type { TargetFlags } from "./operation.ts";
import { operationCommand } from "./operation-command.ts";
import { whenParentEnds } from "./parent-watch.ts";
import { processTerminal } from "./terminal.ts";
import { UsageError } from "./usage-error.ts";

const usage = `usage: taskwire <command> [flags]

commands:
  init [directory]                 write a new project (proto, handler, client, test, taskwire.yaml)
  dev                              run nats-server, the gateway and the workers of taskwire.yaml;
                                   --cluster 3 runs a local cluster of three nats-servers
                                   instead, with every stream and bucket on three of them
  gateway                          run the Connect gateway
  worker                           run the worker supervisor
  submit <type>/<Method> --json J  submit a task; --wait prints its result
  submit <type>/<Method> --from F  submit one task per line of a JSONL file, with a progress bar;
                                   --checkpoint NAME makes a rerun resume where it stopped
  status <id>                      print a task's status
  watch <id>                       follow a task until it ends
  tasks list [filters]             list tasks (--type, --state, --since, --until, --key,
                                   --field name=value, --limit); "tasks --help" says more
  tasks get <id>                   a task's state, attempts, times, errors and result
  tasks cancel <id>... [--reason R]
                                   cancel tasks
  queues list                      every worker type's queue: counts, paused, oldest, workers
  queues pause|resume <type>       stop and restart a type's workers (pause --until T)
  queues purge <type>              cancel every unfinished task of the type
  dlq list|show|retry|purge        dead letters: "dlq --help" says more
  workers [--type T]               the live worker instances and their load
  schedules list|create|pause|...  recurring tasks: "schedules --help" says more
  migrate [--dry-run]              change the streams and buckets in place to the settings of
                                   taskwire.yaml and the task types (replicas, ack_wait, limits);
                                   processes never change them by themselves
  key create --name N --permission P...
                                   write a new gateway API key to a file (--out, mode 600;
                                   --expires DATE) and print its taskwire.yaml entry

flags:
  --config <file>      the configuration (default: taskwire.yaml)
  --gateway <url>      the gateway, for the commands that call one (default: from the
                       configuration)
  --token-file <file>  the gateway credential (API key or JWT); TASKWIRE_TOKEN holds one too
  --ca <file>          the CA (PEM) an https:// gateway's certificate is checked against;
                       TASKWIRE_CA names one too
  --json               tasks, queues, dlq, workers, schedules: one Protobuf JSON document,
                       not a table
  --yes                tasks cancel, queues purge, dlq retry (several), dlq purge, schedules
                       delete: do it
                       without asking; without a terminal they refuse unless given

exit codes: 0 done, 1 failed; tasks, queues, dlq, workers, schedules: 2 wrong usage or not
confirmed
(nothing was done)`;

async function main(argv: string[]): Promise<void> {
  const operation = operationCommand(argv, {
    terminal: processTerminal(),
    targetOf: (flags) => clientTargetOf(flags).then(({ target }) => target),
  });
  if (operation) return operation;
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: "string", default: "taskwire.yaml" },
      gateway: { type: "string" },
      json: { type: "string" },
      from: { type: "string" },
      checkpoint: { type: "string" },
      wait: { type: "boolean", default: false },
      "token-file": { type: "string" },
      ca: { type: "string" },
      name: { type: "string" },
      permission: { type: "string", multiple: true },
      expires: { type: "string" },
      out: { type: "string" },
      "dry-run": { type: "boolean", default: false },
      cluster: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const [command, arg] = positionals;
  if (values.help || !command) {
    console.log(usage);
    return;
  }
  if (command === "key") {
    if (arg !== "create") throw new Error(`unknown command "key ${arg ?? ""}": did you mean "key create"?`);
    const lines = await createApiKey({
      name: values.name,
      permissions: values.permission ?? [],
      expires: values.expires,
      out: values.out,
    });
    for (const line of lines) console.log(line);
    return;
  }
  if (command === "init") {
    for (const line of await initProject(arg ?? ".")) console.log(line);
    return;
  }
  if (command === "submit" || command === "status" || command === "watch") {
    const { target, config } = await clientTargetOf(values);
    return clientCommand(command, arg, target, config, values);
  }
  if (!existsSync(values.config)) throw noConfig(values.config, "pass --config <file>");
  const config = await loadConfig(values.config);
  switch (command) {
    case "dev": {
      const nodes = values.cluster === undefined ? 1 : Number(values.cluster);
      let parts: Stoppable[];
      let deployment = config;
      if (nodes === 1) {
        const nats = await startNatsServer(config.nats.url, config.nats.dataDir);
        console.log(`nats-server on ${nats.url} (data in ${config.nats.dataDir})`);
        parts = [nats];
      } else {
        const cluster = await startNatsCluster(config.nats.url, config.nats.dataDir, nodes);
        console.log(
          `nats-server cluster of ${nodes} on ${cluster.urls.join(", ")} (data in ${config.nats.dataDir}/n*)`,
        );
        parts = [cluster];
        // Every process on every node, and every stream and bucket on `nodes` of them (unless the config says).
        deployment = {
          ...config,
          nats: {
            ...config.nats,
            replicas: config.nats.replicas ?? Math.min(nodes, 5),
            connection: { ...config.nats.connection, servers: [...cluster.urls] },
          },
        };
      }
      try {
        // From this repository's sources, the console is built on first use (an installed package
        // ships it). Without it the gateway serves everything else.
        if (deployment.gateway.console) {
          await buildConsoleIfStale().catch((error: Error) =>
            console.error(`taskwire: the web console is not served: ${error.message}`),
          );
        }
        const gateway = await runGateway(deployment);
        parts.unshift(gateway);
        const supervisor = runWorkers(deployment);
        parts.unshift(supervisor);
        // Without worker.metrics, on a free port: several `taskwire dev` may run on one machine.
        const metrics = await serveWorkerMetrics(
          deployment,
          supervisor,
          deployment.worker.metrics ?? { host: "127.0.0.1", port: 0 },
        );
        parts.unshift(metrics);
        await Promise.all([supervisor.ready, Promise.race([gateway.connected, gateway.failed])]);
        // In a project the command is the installed package's; in this repository, the npm script.
        const cli = import.meta.url.includes("/node_modules/") ? "npx taskwire" : "npm run taskwire --";
        console.log(
          [
            ...(gateway.consoleUrl ? [`console: ${gateway.consoleUrl}`] : []),
            `metrics: ${gateway.url}/metrics (gateway), ${metrics.url} (workers)`,
            `workers ready: ${describePools(deployment, supervisor)}`,
            ...devBanner(cli, gateway.url, gateway.firstService),
          ].join("\n"),
        );
      } catch (error) {
        await stopAll(parts);
        throw error;
      }
      return untilSignal(parts);
    }
    case "gateway": {
      const gateway = await runGateway(config);
      if (gateway.consoleUrl) console.log(`taskwire gateway: console on ${gateway.consoleUrl}`);
      const reload = config.gateway.tls
        ? () => {
            try {
              gateway.reloadTls();
              console.log("taskwire: SIGHUP: TLS certificate reloaded");
            } catch (error) {
              console.error(`taskwire: SIGHUP: keeping the TLS certificate in use: ${(error as Error).message}`);
            }
          }
        : undefined;
      return untilSignal([gateway], reload);
    }
    case "migrate": {
      for (const line of await migrate(config, values["dry-run"])) console.log(line);
      return;
    }
    case "worker": {
      const supervisor = runWorkers(config);
      const where = config.worker.metrics;
      const metrics =
        where &&
        (await serveWorkerMetrics(config, supervisor, where).catch(async (error: unknown) => {
          await supervisor.stop();
          throw error;
        }));
      const stopped = untilSignal(metrics ? [metrics, supervisor] : [supervisor]);
      await supervisor.ready.catch(async (error: unknown) => {
        stopped.catch(() => undefined); // the same failure, said once
        await metrics?.stop();
        await supervisor.stop();
        throw error;
      });
      console.log(`taskwire worker: ready: ${describePools(config, supervisor)}`);
      if (metrics) console.log(`taskwire worker: metrics on ${metrics.url}`);
      return stopped;
    }
    default:
      throw new Error(`unknown command "${command}"\n\n${usage}`);
  }
}

/** The error of a command that needs the configuration `path`, which is not there. */
function noConfig(path: string, advice: string): Error {
  return new Error(`no ${path} in ${process.cwd()}: ${advice}, or write a new project with "taskwire init"`);
}

/**
 * The gateway the commands that call one call: --gateway, else the
 * configuration's; with the credential and the CA. The configuration, when
 * there is one, comes too.
 */
async function clientTargetOf(
  flags: TargetFlags,
): Promise<{ target: ClientTarget; config: TaskwireConfig | undefined }> {
  const hasConfig = existsSync(flags.config);
  // Given the gateway, they need no configuration: the gateway describes its task types.
  if (flags.gateway === undefined && !hasConfig)
    throw noConfig(flags.config, "pass --gateway <url> (e.g. http://127.0.0.1:8080) or --config <file>");
  const config = hasConfig ? await loadConfig(flags.config) : undefined;
  const token = await tokenOf(flags["token-file"]);
  const ca = await caOf(flags.ca);
  const target =
    flags.gateway !== undefined
      ? targetOfGateway(flags.gateway, token, ca)
      : targetOfConfig(config as TaskwireConfig, token, ca);
  return { target, config };
}

/** `submit`, `status` and `watch`: calls to the gateway. */
function clientCommand(
  command: "submit" | "status" | "watch",
  arg: string | undefined,
  target: ClientTarget,
  config: TaskwireConfig | undefined,
  values: { json?: string; from?: string; checkpoint?: string; wait: boolean },
): Promise<void> {
  switch (command) {
    case "submit":
      if (!arg) throw new Error("submit needs <worker type>/<Method>");
      if (values.from !== undefined) return submitFileCommand(target, config, arg, values.from, values.checkpoint);
      if (values.json === undefined) {
        throw new Error("submit needs --json '{...}' (the request message in JSON) or --from <file.jsonl>");
      }
      return submitCommand(target, arg, values.json, values.wait);
    case "status":
      if (!arg) throw new Error("status needs a task id");
      return statusCommand(target, arg);
    case "watch":
      if (!arg) throw new Error("watch needs a task id");
      return watchCommand(target, arg);
  }
}

/** "hasher (2 processes: hasher), reports (1 process: reports)": each pool, its processes and worker types. */
function describePools(config: TaskwireConfig, supervisor: Supervisor): string {
  return config.worker.pools
    .map((pool) => {
      const processes = pool.processes ?? 1;
      const types = supervisor.workerTypes.get(pool.name)?.join(", ") || "no worker types";
      return `${pool.name} (${processes} process${processes === 1 ? "" : "es"}: ${types})`;
    })
    .join(", ");
}

/** This process's parent when it started: npm's `sh -c` when npm started it. */
const parentAtStart = process.ppid;

function untilSignal(parts: Stoppable[], onHangUp?: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let stopping = false;
    // Handlers stay installed: one Ctrl-C can arrive twice (from the terminal and
    // relayed by a wrapper such as npm or tsx), and a second must not kill the stop.
    const end = (reason: string, failure: Error | undefined) => {
      if (stopping) return;
      stopping = true;
      console.log(`taskwire: ${reason}: stopping`);
      void stopAll(parts).then(() => {
        console.log("taskwire: stopped");
        // A part that failed by itself: exit non-zero, so that a service manager starts it again.
        if (failure) reject(failure);
        else resolve();
      });
    };
    const stop = (reason: string) => end(reason, undefined);
    for (const part of parts) part.failed?.catch((error: Error) => end(error.message, error));
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    // The terminal closed: nats-server, in a group of its own, did not hear it. A TLS
    // gateway reads its certificate files again instead, as servers do on SIGHUP.
    process.on("SIGHUP", onHangUp ?? stop);
    // Started by npm (npx, npm exec, npm run): a SIGTERM to npm ends the `sh -c` between
    // them and never reaches this process, which sees only its parent end. Elsewhere a
    // parent may end on purpose (nohup, a shell script's `&`), so only under npm.
    if (process.env.npm_lifecycle_event !== undefined) {
      whenParentEnds(parentAtStart, () => stop(`its parent process (pid ${parentAtStart}) ended`));
    }
  });
}

async function stopAll(parts: Stoppable[]): Promise<void> {
  for (const part of parts) {
    try {
      await part.stop();
    } catch (error) {
      console.error(`taskwire: stopping: ${(error as Error).message}`);
    }
  }
}

main(process.argv.slice(2))
  .then(
    () => 0,
    (error: Error) => {
      console.error(`taskwire: ${error instanceof ConnectError ? error.rawMessage : error.message}`);
      return error instanceof UsageError ? 2 : 1;
    },
  )
  // Spans a batching span processor still holds (docs/operations.md#traces) go before the exit.
  .then((code) => flushTraces().then(() => process.exit(code)));

/** The gateway credential: the first line of --token-file, else TASKWIRE_TOKEN; never printed. */
async function tokenOf(file: string | undefined): Promise<string | undefined> {
  if (file === undefined) return process.env.TASKWIRE_TOKEN || undefined;
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new Error(
      `cannot read --token-file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  const token = text.split("\n")[0]?.trim();
  if (!token) throw new Error(`--token-file ${file} is empty`);
  return token;
}

/** The CA of --ca, else of the file TASKWIRE_CA names; none: the system's CAs. */
async function caOf(file: string | undefined): Promise<Buffer | undefined> {
  const path = file ?? (process.env.TASKWIRE_CA || undefined);
  if (path === undefined) return undefined;
  try {
    return await readFile(path);
  } catch (error) {
    const from = file === undefined ? "TASKWIRE_CA" : "--ca";
    throw new Error(
      `cannot read the CA of ${from}, ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
}
