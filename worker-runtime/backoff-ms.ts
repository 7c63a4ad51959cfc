import { durationMs } from "@bufbuild/protobuf/wkt";
import type { RetryPolicy } from "../gen/taskwire/v1/task_pb.ts";

/**
 * The delay before the attempt after `failedAttempt`:
 * min(initial * multiplier^(failedAttempt-1), max), spread by +/- jitter.
 */
export function backoffMs(policy: RetryPolicy, failedAttempt: number, random = Math.random): number {
  const initial = policy.initialBackoff ? durationMs(policy.initialBackoff) : 1000;
  const max = policy.maxBackoff ? durationMs(policy.maxBackoff) : 300_000;
  const base = Math.min(initial * (policy.multiplier || 2) ** Math.max(0, failedAttempt - 1), max);
  const spread = base * policy.jitter * (2 * random() - 1);
  return Math.max(0, Math.round(base + spread));
}
