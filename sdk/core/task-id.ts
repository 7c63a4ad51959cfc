import { createHash, randomFillSync } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { TaskError } from "./task-error.ts";

// Crockford's base32: sortable, case-insensitive, no ambiguous letters.
const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** Characters of a route: the last ones of a task id. */
export const routeLength = 8;

/**
 * A new task id: `<worker type>.<26 characters>` of Crockford base32, sorting by
 * creation time: 10 of time (ms since the epoch), 8 of this process's id counter,
 * then {@link routeLength} naming a route. The worker-type prefix lets any
 * gateway find the task's stream without a lookup. The status bucket republishes
 * every stored write of a task's record on a subject that ends in its route
 * (`topology.statusEventSubject`): a submitter that names its own route, and
 * listens there, hears of its tasks without a subscription per task. Without
 * one, the route is random: nobody listens.
 */
export function newTaskId(workerType: string, now = Date.now(), route = newRoute()): string {
  counter = (counter + 1) % counterLimit;
  return `${workerType}.${encodeNumber(now, 10)}${encodeNumber(counter, 8)}${route}`;
}

/** A random route: 40 bits, so the live submitters' routes are distinct. */
export function newRoute(): string {
  return encodeBytes(randomBytes(5));
}

// 40 bits: ids of one process are distinct until 2^40 of them share a millisecond.
const counterLimit = 2 ** 40;
let counter = Math.floor(Math.random() * counterLimit);

// Random bytes drawn from the system in blocks: one call per 819 routes, not one per route.
const pool = new Uint8Array(4096);
let used = pool.length;

function randomBytes(count: number): Uint8Array {
  if (used + count > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  used += count;
  return pool.subarray(used - count, used);
}

/**
 * The task id an idempotency key maps to: the same key (per worker type) always
 * names the same task, so a retried submit on any gateway finds the first one.
 */
export function keyedTaskId(workerType: string, idempotencyKey: string): string {
  const digest = createHash("sha256").update(workerType).update("\0").update(idempotencyKey).digest();
  return `${workerType}.K${encodeBytes(digest.subarray(0, 16)).slice(0, 25)}`;
}

/** Worker type names: subject tokens and stream-name parts (as `(taskwire.v1.worker).type` requires). */
const workerTypeName = "[a-z][a-z0-9_-]{0,63}";
const workerTypePattern = new RegExp(`^${workerTypeName}$`);
const taskIdPattern = new RegExp(`^(${workerTypeName})\\.[0-9A-Z]{26}$`);

/** `name`, if it is a worker type name; INVALID_ARGUMENT naming `field` otherwise. */
export function checkWorkerType(name: string, field = "worker_type"): string {
  if (!workerTypePattern.test(name)) {
    throw new TaskError(
      `${field} "${name}" is not a worker type name (a lowercase letter, then up to 63 of a-z 0-9 _ -)`,
      Code.InvalidArgument,
    );
  }
  return name;
}

/** The worker type named by a task id; INVALID_ARGUMENT when the id is malformed. */
export function workerTypeOf(taskId: string): string {
  const match = taskIdPattern.exec(taskId);
  if (!match?.[1]) {
    throw new TaskError(
      `task id "${taskId}" is malformed: expected "<worker type>.<26 letters and digits>"`,
      Code.InvalidArgument,
    );
  }
  return match[1];
}

/** The id of a task of `workerType` whose subject (in its queue or schedule) is `subject`: it ends in the id's token. */
export function taskIdOfSubject(workerType: string, subject: string): string {
  return `${workerType}.${subject.slice(subject.lastIndexOf(".") + 1)}`;
}

/** The part of a task id that follows the worker type (a subject token). */
export function taskIdToken(taskId: string): string {
  return taskId.slice(taskId.indexOf(".") + 1);
}

/** `value` (an integer below 32^length) in `length` base32 characters, most significant first. */
function encodeNumber(value: number, length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) {
    out = alphabet[value % 32] + out;
    value = Math.floor(value / 32);
  }
  return out;
}

function encodeBytes(bytes: Uint8Array): string {
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += alphabet[(buffer << (5 - bits)) & 31];
  return out;
}
