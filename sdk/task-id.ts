import { createHash, randomFillSync } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { TaskError } from "./task-error.js";

// Crockford's base32: sortable, case-insensitive, no ambiguous letters.
const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/**
 * A new task id: `<worker type>.<ULID>`. The ULID sorts by creation time; the
 * worker-type prefix lets any gateway find the task's stream without a lookup.
 */
export function newTaskId(workerType: string, now = Date.now()): string {
  return `${workerType}.${encodeTime(now)}${encodeBytes(randomId())}`;
}

// Random bytes drawn from the system in blocks: one call per 409 ids, not one per id.
const pool = new Uint8Array(4096);
let used = pool.length;

function randomId(): Uint8Array {
  if (used + 10 > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  used += 10;
  return pool.subarray(used - 10, used);
}

/**
 * The task id an idempotency key maps to: the same key (per worker type) always
 * names the same task, so a retried submit on any gateway finds the first one.
 */
export function keyedTaskId(workerType: string, idempotencyKey: string): string {
  const digest = createHash("sha256").update(workerType).update("\0").update(idempotencyKey).digest();
  return `${workerType}.K${encodeBytes(digest.subarray(0, 16)).slice(0, 25)}`;
}

/** The worker type named by a task id; INVALID_ARGUMENT when the id is malformed. */
export function workerTypeOf(taskId: string): string {
  const match = /^([a-z][a-z0-9_-]{0,63})\.([0-9A-Z]{26})$/.exec(taskId);
  if (!match?.[1]) {
    throw new TaskError(
      `task id "${taskId}" is malformed: expected "<worker type>.<26 letters and digits>"`,
      Code.InvalidArgument,
    );
  }
  return match[1];
}

/** The part of a task id that follows the worker type (a subject token). */
export function taskIdToken(taskId: string): string {
  return taskId.slice(taskId.indexOf(".") + 1);
}

function encodeTime(ms: number): string {
  let out = "";
  for (let i = 0; i < 10; i++) {
    out = alphabet[ms % 32] + out;
    ms = Math.floor(ms / 32);
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
