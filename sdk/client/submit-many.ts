import { create, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { TaskErrorSchema } from "../../gen/taskwire/v1/task_pb.ts";
import type { BatchSubmitResult } from "../../gen/taskwire/v1/task_service_pb.ts";
import type { SubmitOptions, TaskBackend, TaskMethod } from "../core/index.ts";
import { TaskError, taskFromOptions } from "../core/index.ts";

/** One task of a bulk submit. */
export interface SubmitItem<I extends DescMessage> {
  /** The task's payload: the method's request message. */
  readonly request: MessageInitShape<I>;
  /** This task's own submit options (an idempotency key, a delay, a priority...). */
  readonly options?: SubmitOptions;
}

/** Options of `client.submitMany`. */
export interface SubmitManyOptions {
  /** Submits that may be unacknowledged at once; memory stays flat whatever the input's length. @default 1000 */
  maxInFlight?: number;
  /**
   * Records progress under this name; a later run with the same name (and the
   * same items, in the same order) resumes after the last acknowledged item.
   * Each item without its own idempotency key gets `<name>/<index>`, so items
   * resubmitted after a restart are duplicates, not new tasks.
   */
  checkpoint?: string;
  /** Called after each acknowledged chunk. */
  onProgress?: (progress: SubmitManyProgress) => void;
}

/** Where a bulk submit is. */
export interface SubmitManyProgress {
  /** Items known acknowledged, from the first one (those skipped on resuming included). */
  readonly acknowledged: number;
  /** Of them, duplicates of tasks submitted earlier. */
  readonly duplicates: number;
  /** Items refused (each with its error in the summary's `failures`). */
  readonly failed: number;
  /** Items skipped because a checkpoint said they were acknowledged before. */
  readonly resumedFrom: number;
}

/** The end of a bulk submit: the progress, plus the first refusals. */
export interface SubmitManySummary extends SubmitManyProgress {
  /** The first 100 refused items: their index and why. */
  readonly failures: ReadonlyArray<{
    /** The item's position in the input, from 0. */
    readonly index: number;
    /** Why it was refused. */
    readonly error: TaskError;
  }>;
}

/** Where checkpoints live (direct mode: a JetStream KV bucket). */
export interface CheckpointStore {
  /** The index of the first item not known acknowledged; 0 for a new name. */
  load(name: string): Promise<number>;
  save(name: string, next: number): Promise<void>;
}

const chunkSize = 100;
const saveEveryMs = 1_000;

/**
 * Submits every item of a possibly endless, lazily produced sequence in
 * BatchSubmit chunks, with at most `maxInFlight` unacknowledged, optionally
 * recording progress under a checkpoint. Resolves once every item is
 * acknowledged or refused; rejects if the input or NATS fails (the checkpoint
 * then holds what was acknowledged, for a rerun).
 */
export async function submitMany<I extends DescMessage>(
  backend: TaskBackend,
  checkpoints: CheckpointStore | undefined,
  method: TaskMethod<I>,
  items: Iterable<SubmitItem<I>> | AsyncIterable<SubmitItem<I>>,
  options: SubmitManyOptions = {},
): Promise<SubmitManySummary> {
  const maxInFlight = options.maxInFlight ?? 1_000;
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
    throw new TaskError(`maxInFlight must be a positive integer, got ${maxInFlight}`, Code.InvalidArgument);
  }
  const name = options.checkpoint;
  if (name !== undefined && !checkpoints) {
    throw new TaskError(
      "submitMany: checkpoints are kept in NATS: use a direct client ({ nats, services })",
      Code.FailedPrecondition,
    );
  }
  const store = name !== undefined ? checkpoints : undefined;
  const resumedFrom = store && name !== undefined ? await store.load(name) : 0;

  // Acknowledged indices beyond the contiguous prefix [0, watermark).
  const done = new Set<number>();
  let watermark = resumedFrom;
  let duplicates = 0;
  const failures: Array<{ index: number; error: TaskError }> = [];
  let failed = 0;
  let inFlight = 0;
  let fault: unknown;
  let wake: (() => void) | undefined;
  const progress = (): SubmitManyProgress => ({ acknowledged: watermark, duplicates, failed, resumedFrom });
  let saved = resumedFrom;
  let lastSave = Date.now();
  let saving: Promise<void> = Promise.resolve();
  const save = (force: boolean) => {
    if (!store || name === undefined || watermark === saved) return;
    if (!force && Date.now() - lastSave < saveEveryMs) return;
    const next = watermark;
    saved = next;
    lastSave = Date.now();
    saving = saving.then(() => store.save(name, next));
  };

  const settle = (first: number, results: BatchSubmitResult[]) => {
    results.forEach(({ outcome }, offset) => {
      const index = first + offset;
      if (outcome.case === "accepted") {
        if (outcome.value.duplicate) duplicates++;
      } else {
        failed++;
        const error = TaskError.fromMessage(outcome.value ?? create(TaskErrorSchema), undefined);
        if (failures.length < 100) failures.push({ index, error });
      }
      done.add(index);
    });
    while (done.delete(watermark)) watermark++;
    save(false);
    options.onProgress?.(progress());
  };

  const send = (first: number, chunk: SubmitItem<I>[]) => {
    inFlight += chunk.length;
    const tasks = chunk.map(({ request, options: own }, offset) =>
      taskFromOptions(method, request, {
        ...own,
        idempotencyKey: own?.idempotencyKey ?? (name !== undefined ? `${name}/${first + offset}` : undefined),
      }),
    );
    // No handles are returned, so nobody here waits for these outcomes.
    backend
      .batchSubmit(tasks, { notify: false })
      .then(
        (results) => settle(first, results),
        (error: unknown) => {
          fault ??= error;
        },
      )
      .finally(() => {
        inFlight -= chunk.length;
        wake?.();
      });
  };
  const room = async (needed: number) => {
    while (fault === undefined && inFlight + needed > maxInFlight) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  };

  let index = 0;
  let chunk: SubmitItem<I>[] = [];
  let first = resumedFrom;
  const limit = Math.min(chunkSize, maxInFlight);
  try {
    for await (const item of items) {
      if (fault !== undefined) break;
      if (index++ < resumedFrom) continue; // acknowledged in an earlier run
      chunk.push(item);
      if (chunk.length === limit) {
        await room(chunk.length);
        send(first, chunk);
        first += chunk.length;
        chunk = [];
      }
    }
    if (chunk.length > 0 && fault === undefined) {
      await room(chunk.length);
      send(first, chunk);
    }
  } finally {
    // Whatever ended the input, what was acknowledged is recorded.
    while (inFlight > 0) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
    save(true);
    await saving;
  }
  if (fault !== undefined) throw TaskError.from(fault);
  return { ...progress(), failures };
}
