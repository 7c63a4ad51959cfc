import { type ParseArgsOptionsConfig, parseArgs } from "node:util";
import { type DescMessage, type MessageShape, type Registry, toJson } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import type { TaskwireClient } from "../sdk/client/index.ts";
import { type ClientTarget, withClient } from "./commands.ts";
import type { Terminal } from "./terminal.ts";
import { UsageError } from "./usage-error.ts";

/** The flags of every operation (`tasks`, `queues`, `dlq`, `workers`). */
export const commonOptions = {
  config: { type: "string", default: "taskwire.yaml" },
  gateway: { type: "string" },
  "token-file": { type: "string" },
  ca: { type: "string" },
  json: { type: "boolean", default: false },
  yes: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const satisfies ParseArgsOptionsConfig;

/** The flags that choose the gateway and how to reach it, as `submit` takes them. */
export interface TargetFlags {
  readonly config: string;
  readonly gateway?: string | undefined;
  readonly "token-file"?: string | undefined;
  readonly ca?: string | undefined;
}

/** What an operation needs from the command around it. */
export interface OperationContext {
  /** Where it writes and whom it may ask. */
  readonly terminal: Terminal;
  /** The gateway the flags name (--gateway, else the configuration's), with the credential and CA. */
  targetOf(flags: TargetFlags): Promise<ClientTarget>;
}

/**
 * Parses an operation's arguments: the common flags and its own. An unknown
 * flag or a missing value is a UsageError that shows `usage`.
 */
export function parseOperation<T extends ParseArgsOptionsConfig>(args: string[], own: T, usage: string) {
  try {
    return parseArgs({ args, options: { ...commonOptions, ...own }, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n\n${usage}`);
  }
}

/** Runs `run` with a client of the gateway the flags name, closed afterwards. */
export async function withGateway(
  context: OperationContext,
  flags: TargetFlags,
  run: (client: TaskwireClient, target: ClientTarget) => Promise<void>,
): Promise<void> {
  const target = await context.targetOf(flags);
  await withClient(target, (client) => run(client, target));
}

/** Prints `message` as one Protobuf JSON document; `registry` resolves the Any fields (results, details). */
export function printJson<Desc extends DescMessage>(
  terminal: Terminal,
  schema: Desc,
  message: MessageShape<Desc>,
  registry?: Registry,
): void {
  terminal.print(JSON.stringify(toJson(schema, message, registry ? { registry } : {}), null, 2));
}

/** The value of --limit: a whole number from 1 up, else `fallback` when the flag is absent. */
export function limitOf(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1) {
    throw new UsageError(`--limit must be a whole number from 1 up, got "${value}"`);
  }
  return Number(value);
}

/**
 * Refuses a flag of the noun's own (`own`) that the verb does not take, as
 * `--until` given to `queues resume`: a UsageError naming it and the command.
 * `flagsOfVerb` lists each verb's; an unknown verb is left to the noun to refuse.
 */
export function checkFlags(
  values: Readonly<Record<string, unknown>>,
  own: ParseArgsOptionsConfig,
  flagsOfVerb: Readonly<Record<string, readonly string[]>>,
  noun: string,
  verb: string | undefined,
): void {
  if (verb === undefined || !Object.hasOwn(flagsOfVerb, verb)) return;
  const allowed = flagsOfVerb[verb] ?? [];
  const stray = Object.keys(own).find(
    (name) => !allowed.includes(name) && values[name] !== undefined && values[name] !== false,
  );
  if (stray !== undefined) throw new UsageError(`--${stray} is not a flag of ${noun} ${verb}`);
}

/** The positional arguments after the noun and verb: ids, or a worker type. */
export function operands(positionals: string[]): string[] {
  return positionals.slice(2);
}

/** The UsageError of a verb the noun does not have. */
export function unknownVerb(noun: string, verb: string | undefined, usage: string): UsageError {
  return new UsageError(
    `${verb === undefined ? `"${noun}" needs a command` : `unknown command "${noun} ${verb}"`}\n\n${usage}`,
  );
}

/** What went wrong, in words: a Connect error's message without its "[code]" prefix. */
export function errorText(error: unknown): string {
  return error instanceof ConnectError ? error.rawMessage : (error as Error).message;
}
