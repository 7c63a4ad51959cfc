import { routeLength } from "./task-id.ts";
import type { PriorityName } from "./task-method.ts";

const statusBucket = "taskwire_status";

/**
 * A limit of a type, whose leases are messages of `LIMITS_<type>`: "run"
 * (concurrency), "rate" (starts per second), "dispatch" (the fair dispatcher),
 * or a fairness key's own ("key.<hash>" concurrency, "keyrate.<hash>" rate).
 */
export type LimitKind = "run" | "rate" | "dispatch" | `key.${string}` | `keyrate.${string}`;

/**
 * Every NATS name Taskwire uses, in one place. docs/protocol.md describes the
 * same layout for workers written in other languages.
 *
 * - `taskwire.task.<type>.<priority>.<id-token>`: a task's WorkItem, in stream
 *   `TASKS_<type>` (work-queue retention, one message per subject).
 * - consumer `<type>_<priority>` per priority, shared by every worker of the type.
 * - KV bucket `taskwire_status`: a TaskStatus per task id (`<type>.<ulid>`).
 * - `taskwire.status.<route>.<type>.<ulid>`: core NATS, each stored write of a
 *   task's status record, republished by the server (the route is the id's last
 *   8 characters: its submitter's).
 * - `taskwire.cancel.<type>`: core NATS, the id of a task to abort.
 * - `taskwire.result.<type>`: core NATS, a TaskResult per terminal outcome.
 * - `taskwire.control.<type>`: core NATS, "paused" or "resumed": the type's queue was.
 * - `taskwire.sched.<type>.wait.<id-token>`: a delayed task's WorkItem with its
 *   schedule, in stream `SCHED_<type>`; the server republishes it to
 *   `taskwire.sched.<type>.due.<id-token>` when due, and consumer `<type>_due`
 *   (pulled by workers) moves it to its task subject.
 * - `taskwire.sched.<type>.cron.<schedule id>`: a schedule's next time, armed
 *   (a message schedule `@at` it) in stream `SCHED_<type>`; the server puts a
 *   tick on `taskwire.sched.<type>.tick.<schedule id>` then, and consumer
 *   `<type>_ticks` (pulled by workers and gateways) fires it.
 * - KV bucket `taskwire_schedules`: a ScheduleInfo per `<type>.<schedule id>`.
 * - `taskwire.fair.<type>.<key hash>`: the WorkItems of tasks with a fairness
 *   key, in stream `FAIR_<type>`, until the type's dispatcher queues them.
 * - `taskwire.children.<type>.<id-token>.{ended,failed}`: counters (ADR-49) of
 *   the children of a parent task of the type, in stream `CHILDREN_<type>`;
 *   `taskwire.index.<type>.children.<id-token>` the ids of its children, and
 *   `taskwire.index.<type>.children.<id-token>.fatal` the id of a child whose
 *   failure fails it, in `INDEX_<type>`; `taskwire.sched.<type>.park.<id-token>`
 *   its WorkItem while it waits for them, in `SCHED_<type>`.
 * - `taskwire.dead.<type>.<id-token>`: a DeadLetter, in stream `DEAD_<type>`.
 * - `taskwire.bcast.<type>.<endpoint>.<id-token>`: a broadcast task's copy for
 *   one worker instance, in stream `BCAST_<type>`; consumer `<type>_ep_<endpoint>`.
 * - KV bucket `taskwire_workers`: `<type>.<worker id>` per live worker instance.
 * - `taskwire.limit.<type>.{run,rate}.<n>`: leases of the type's limits, in
 *   stream `LIMITS_<type>` (per-message TTL).
 * - `taskwire.index.<type>`: the ids of the type's tasks in submit order, one
 *   message per submitter and event-loop turn, in stream `INDEX_<type>`;
 *   `taskwire.index.<type>.<state>` (running, succeeded, failed, cancelled,
 *   expired, incomplete) the ids of those that entered the state, as written;
 *   `taskwire.index.<type>.field.<name>.<hash>` those whose request field `name`
 *   (marked searchable) has the value of that hash.
 */
export const topology = {
  /** Priorities, highest first: the order workers take them in. */
  priorities: ["high", "normal", "low"] as const satisfies readonly PriorityName[],
  /** The stream of a worker type's tasks (work-queue retention, one message per subject). */
  streamName: (workerType: string) => `TASKS_${workerType}`,
  /** The subjects of that stream: every task of the type, at any priority. */
  streamSubjects: (workerType: string) => `taskwire.task.${workerType}.>`,
  /** A task's WorkItem at its priority. */
  taskSubject: (workerType: string, priority: PriorityName, idToken: string) =>
    `taskwire.task.${workerType}.${priority}.${idToken}`,
  /** Matches the task with this id token at any priority. */
  taskSubjectAnyPriority: (workerType: string, idToken: string) => `taskwire.task.${workerType}.*.${idToken}`,
  /** The consumer of one priority, shared by every worker of the type. */
  consumerName: (workerType: string, priority: PriorityName) => `${workerType}_${priority}`,
  /** The subjects that consumer takes: the type's tasks at that priority. */
  consumerFilter: (workerType: string, priority: PriorityName) => `taskwire.task.${workerType}.${priority}.*`,
  /** The KV bucket of task status records: a TaskStatus per task id. */
  statusBucket,
  /** The stream behind the status bucket. */
  statusStream: `KV_${statusBucket}`,
  /** The subject a task's status record is written on (the bucket's key subject). */
  statusSubject: (taskId: string) => `$KV.${statusBucket}.${taskId}`,
  /** Core NATS: each stored write of a task's status record, republished by the server. */
  statusEventSubject: (taskId: string) => `taskwire.status.${taskId.slice(-routeLength)}.${taskId}`,
  /** The status events of every task whose id carries this route. */
  statusEventsOf: (route: string) => `taskwire.status.${route}.>`,
  /** Core NATS: the id of a task of this type to abort. */
  cancelSubject: (workerType: string) => `taskwire.cancel.${workerType}`,
  /** Core NATS: a TaskResult event per terminal outcome (the default subject). */
  resultSubject: (workerType: string) => `taskwire.result.${workerType}`,
  /** The stream of the type's delayed tasks, waiting or due. */
  schedulerStream: (workerType: string) => `SCHED_${workerType}`,
  /** The subjects of that stream: every delayed task of the type, waiting or due. */
  schedulerSubjects: (workerType: string) => `taskwire.sched.${workerType}.>`,
  /** A delayed task's WorkItem, carrying the `Nats-Schedule` headers, until it is due. */
  waitingSubject: (workerType: string, idToken: string) => `taskwire.sched.${workerType}.wait.${idToken}`,
  /** Where the server puts a delayed task when it is due; workers move it to its task subject. */
  dueSubject: (workerType: string, idToken: string) => `taskwire.sched.${workerType}.due.${idToken}`,
  /** Matches a delayed task with this id token, waiting or due. */
  scheduledSubject: (workerType: string, idToken: string) => `taskwire.sched.${workerType}.*.${idToken}`,
  /** The consumer of due delayed tasks, pulled by workers. */
  dueConsumerName: (workerType: string) => `${workerType}_due`,
  /** KV bucket of schedules: a ScheduleInfo per `<type>.<schedule id>`. */
  schedulesBucket: "taskwire_schedules",
  /** A schedule's armed next time, until the server turns it into a tick. */
  scheduleArmSubject: (workerType: string, scheduleId: string) => `taskwire.sched.${workerType}.cron.${scheduleId}`,
  /** Where the server puts a schedule's tick at its time. */
  scheduleTickSubject: (workerType: string, scheduleId: string) => `taskwire.sched.${workerType}.tick.${scheduleId}`,
  /** The consumer of a type's schedule ticks, pulled by its workers and by gateways. */
  tickConsumerName: (workerType: string) => `${workerType}_ticks`,
  /** Core NATS, "paused <RFC 3339 end>" or "resumed": workers start nothing until then, or pull again at once. */
  controlSubject: (workerType: string) => `taskwire.control.${workerType}`,
  /** Leases of the type's limits across workers: one message per running attempt or recent start. */
  limitStream: (workerType: string) => `LIMITS_${workerType}`,
  /** Lease `n` of a limit ("run": concurrency, "rate": starts per second, "dispatch": the fair dispatcher). */
  limitSubject: (workerType: string, limit: LimitKind, n: number) => `taskwire.limit.${workerType}.${limit}.${n}`,
  /** Copies of broadcast tasks, one per endpoint (worker instance). */
  broadcastStream: (workerType: string) => `BCAST_${workerType}`,
  /** One endpoint's copy of a broadcast task. */
  broadcastSubject: (workerType: string, endpoint: string, idToken: string) =>
    `taskwire.bcast.${workerType}.${endpoint}.${idToken}`,
  /** The consumer of one endpoint's broadcast copies, created by that worker. */
  endpointConsumerName: (workerType: string, endpoint: string) => `${workerType}_ep_${endpoint}`,
  /** KV bucket of live worker instances: key `<type>.<worker id>`, refreshed while the worker runs. */
  workersBucket: "taskwire_workers",
  /** Workers' counts of the tasks they finished, per type and 10-second step: QueueService.GetThroughput reads it. */
  throughputStream: "TASKWIRE_THROUGHPUT",
  /** A message of that stream: one worker's ThroughputPoint of a type for one step. */
  throughputSubject: (workerType: string) => `taskwire.throughput.${workerType}`,
  /** The ids of the type's tasks in submit order: ListTasks reads it, newest first. */
  indexStream: (workerType: string) => `INDEX_${workerType}`,
  /** A message of that stream: the ids of tasks submitted together, newline-separated, oldest first. */
  indexSubject: (workerType: string) => `taskwire.index.${workerType}`,
  /** The subjects of that stream: submits, and each state's entries. */
  indexSubjects: (workerType: string) => [`taskwire.index.${workerType}`, `taskwire.index.${workerType}.>`],
  /** A message of that stream: the ids of tasks whose request has a searchable field's value (its term: `<name>.<hash>`). */
  indexFieldSubject: (workerType: string, term: string) => `taskwire.index.${workerType}.field.${term}`,
  /** A message of that stream: the ids of tasks that entered `state` together (a lower-case state name). */
  indexStateSubject: (workerType: string, state: string) => `taskwire.index.${workerType}.${state}`,
  /** The id of the last task of a debounced method and fairness key (its hash), in SCHED_<type>. */
  debounceSubject: (workerType: string, keyHash: string) => `taskwire.sched.${workerType}.debounce.${keyHash}`,
  /** Tasks with a fairness key, waiting for the type's dispatcher, by key. */
  fairStream: (workerType: string) => `FAIR_${workerType}`,
  /** The tasks of one fairness key (its hash), oldest first. */
  fairSubject: (workerType: string, keyHash: string) => `taskwire.fair.${workerType}.${keyHash}`,
  /** Counters of the children of the type's parent tasks (ADR-49). */
  childrenStream: (workerType: string) => `CHILDREN_${workerType}`,
  /** The subjects of that stream. */
  childrenSubjects: (workerType: string) => `taskwire.children.${workerType}.>`,
  /** A parent's counter of its children that ended, or of those that failed. */
  childrenCounter: (workerType: string, idToken: string, counter: "ended" | "failed") =>
    `taskwire.children.${workerType}.${idToken}.${counter}`,
  /** A message of INDEX_<type>: ids of a parent's children, newline-separated. */
  childrenIndexSubject: (workerType: string, idToken: string) => `taskwire.index.${workerType}.children.${idToken}`,
  /** A message of INDEX_<type>: the id of a child whose failure fails the parent. */
  fatalChildSubject: (workerType: string, idToken: string) => `taskwire.index.${workerType}.children.${idToken}.fatal`,
  /** A parent's WorkItem while it waits for its children, in SCHED_<type>. */
  parkedSubject: (workerType: string, idToken: string) => `taskwire.sched.${workerType}.park.${idToken}`,
  /** The stream of the type's dead letters. */
  deadLetterStream: (workerType: string) => `DEAD_${workerType}`,
  /** A dead task's DeadLetter. */
  deadLetterSubject: (workerType: string, idToken: string) => `taskwire.dead.${workerType}.${idToken}`,
} as const;
