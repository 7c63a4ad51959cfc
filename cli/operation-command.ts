import { parseArgs } from "node:util";
import { dlqCommand, dlqOptions } from "./dlq-command.ts";
import { commonOptions, type OperationContext } from "./operation.ts";
import { queuesCommand, queuesOptions } from "./queues-command.ts";
import { schedulesCommand, schedulesOptions } from "./schedules-command.ts";
import { tasksCommand, tasksOptions } from "./tasks-command.ts";
import { workersCommand, workersOptions } from "./workers-command.ts";

/** The operations, by the noun that names them. */
const operations = {
  tasks: tasksCommand,
  queues: queuesCommand,
  dlq: dlqCommand,
  workers: workersCommand,
  schedules: schedulesCommand,
} as const;

/**
 * Runs the operation `argv` names (`tasks`, `queues`, `dlq`, `workers` or `schedules`,
 * anywhere among the flags); undefined when it names another command.
 */
export function operationCommand(argv: string[], context: OperationContext): Promise<void> | undefined {
  // Only to find the noun: each operation parses its own flags strictly.
  const { positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: false,
    options: {
      ...commonOptions,
      ...tasksOptions,
      ...queuesOptions,
      ...dlqOptions,
      ...workersOptions,
      ...schedulesOptions,
    },
  });
  const noun = positionals[0];
  if (noun === undefined || !Object.hasOwn(operations, noun)) return undefined;
  return operations[noun as keyof typeof operations](argv, context);
}
