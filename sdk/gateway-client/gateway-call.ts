import { Code } from "@connectrpc/connect";
import { TaskError } from "../core/index.ts";

/** A call to the gateway whose failure becomes a TaskError with the same code. */
export function gatewayCall<T>(promise: Promise<T>): Promise<T> {
  return promise.catch((error) => Promise.reject(TaskError.from(error)));
}

/** A response field the gateway always sets; INTERNAL when it did not. */
export function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new TaskError(`the gateway answered ${what} without it`, Code.Internal);
  return value;
}
