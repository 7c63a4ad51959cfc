import type { DescMessage } from "@bufbuild/protobuf";
import type { TaskStatus } from "../gen/taskwire/v1/task_pb.ts";
import type { TaskMethod } from "../sdk/core/index.ts";
import type { StatusBucket } from "../sdk/nats/index.ts";
import type { ChildTasks } from "./child-tasks.ts";
import type { Lease, Leases } from "./leases.ts";
import type { TaskContextController } from "./task-context-controller.ts";
import type { TaskMethodHandler } from "./task-service-implementation.ts";
import type { WorkerEvent } from "./worker-event.ts";

/** A method's definition and its handler. */
export interface BoundMethod {
  readonly method: TaskMethod;
  readonly handler: TaskMethodHandler<DescMessage, DescMessage>;
}

/** What an attempt needs from its worker. */
export interface AttemptEnvironment {
  readonly bucket: StatusBucket;
  readonly workerId: string;
  /** Coalescing interval of RUNNING and progress writes. */
  readonly statusIntervalMs: number;
  /** How often a running attempt tells JetStream it is alive (a third of ack_wait). */
  readonly heartbeatMs: number;
  /** The consumers' ack_wait: silent for longer, a delivery may be redelivered elsewhere. */
  readonly ackWaitMs: number;
  /** The largest result kept: a larger one fails its task (the type's retention, else the deployment's). */
  readonly maxResultBytes: number;
  /** The handler of an rpc of this worker type. */
  readonly bind: (methodName: string) => BoundMethod | undefined;
  /** Attempts running now, by task id: cancellation and shutdown abort them. */
  readonly running: Map<string, TaskContextController>;
  /** Ids cancelled recently, so a task pulled just before its cancel never starts. */
  readonly cancelled: Set<string>;
  /** True once the worker drains: new attempts are given back. */
  readonly draining: () => boolean;
  /** True while the worker type is paused: attempts waiting for their limits take none meanwhile. */
  readonly paused: () => boolean;
  readonly emit: (event: WorkerEvent) => void;
  /** The type's `max_concurrency` across workers, when it has one. */
  readonly concurrency?: Leases;
  /** The type's `max_rate` across workers, when it has one. */
  readonly rate?: Leases;
  /** Publishes a stored terminal status as a TaskResult event. */
  readonly reportResult: (status: TaskStatus, stored: Uint8Array) => void;
  /** Publishes over core NATS: the terminal status to the submitter's notify subject. */
  readonly publish: (subject: string, data: Uint8Array) => void;
  /**
   * A run's children, given the children its task had spawned at its last wait
   * (its record's); absent where the worker spawns none.
   */
  readonly children?: (parentId: string, waited: bigint) => ChildTasks;
  /** A lease another process took for this attempt (a keyed task's key lease), to renew and release. */
  readonly adoptLease?: (subject: string, seq: number, holder: string) => Lease;
  /** Cancels a task: the children of a parent that failed or was cancelled. */
  readonly cancel?: (taskId: string, reason: string) => Promise<unknown>;
}
