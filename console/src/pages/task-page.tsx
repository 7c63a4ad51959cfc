import type { Any } from "@bufbuild/protobuf/wkt";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { useEffect, useState } from "preact/hooks";
import {
  DeliveryModeSchema,
  PrioritySchema,
  type TaskError,
  TaskState,
  type TaskStatus,
} from "../../../gen/taskwire/v1/task_pb.ts";
import { errorMessage, queueService, refusedCredential, taskService } from "../api.ts";
import { useConfirm } from "../components/confirm-dialog.tsx";
import { JsonView } from "../components/json-view.tsx";
import { LiveBadge } from "../components/live-badge.tsx";
import { errorCodeName, formatMs, formatTime, isTerminal, stateName } from "../format.ts";
import { useLiveStream } from "../live.ts";
import { links } from "../router.ts";
import { useCan, useSession } from "../session.ts";

/** The payload as GetTask gave it: the message, not kept any more, or why it could not be read. */
type Payload = { readonly any: Any } | { readonly notKept: true } | { readonly error: string } | undefined;

/**
 * One task, live from WatchTask: its state and details, progress, a timeline
 * of its attempts and errors, its result and payload as JSON, the endpoints of
 * a broadcast, and the cancel and retry actions the caller may take.
 */
export function TaskPage({ taskId }: { readonly taskId: string }) {
  const { types, name } = useSession();
  const can = useCan();
  const [status, setStatus] = useState<TaskStatus | undefined>();
  // Raised by a retry: the watch, which ended with the task, follows it again.
  const [round, setRound] = useState(0);
  const live = useLiveStream(
    `task:${taskId}:${round}`,
    (signal) => taskService.watchTask({ taskId }, { signal }),
    (message) => setStatus(message.status),
    (message) => message.status !== undefined && isTerminal(message.status.state),
  );
  const payload = usePayload(taskId, round);
  const state = status?.state;
  const deadLetter = useDeadLetter(taskId, state === TaskState.FAILED, round);
  const [dialog, confirm] = useConfirm();
  const [outcome, setOutcome] = useState<string | undefined>();
  const type = status?.workerType ?? "";
  const cancel = async () => {
    const confirmed = await confirm({
      title: "Cancel this task?",
      body: (
        <p>
          {state === TaskState.RUNNING
            ? "Its handler is asked to stop; the task ends CANCELLED."
            : "It never runs; it ends CANCELLED."}
        </p>
      ),
      confirm: "Cancel the task",
    });
    if (!confirmed) return;
    try {
      await taskService.cancelTask({ taskId, reason: `cancelled from the console by ${name}` });
      setOutcome("Cancellation requested.");
    } catch (error) {
      setOutcome(errorMessage(error));
    }
  };
  const retry = async () => {
    const confirmed = await confirm({
      title: "Retry this dead letter?",
      body: <p>The task is queued again as it was submitted, with a fresh count of attempts.</p>,
      confirm: "Retry the task",
    });
    if (!confirmed) return;
    try {
      await queueService.retryDeadLetter({ taskId });
      setOutcome("Queued again.");
      setRound((r) => r + 1);
    } catch (error) {
      setOutcome(errorMessage(error));
    }
  };
  return (
    <section aria-labelledby="page-title" class="task-page">
      <header class="page-header">
        <h1 id="page-title" class="mono">
          {taskId}
        </h1>
        <LiveBadge live={live} />
      </header>
      {live.state === "failed" ? <p class="problem">{live.error}</p> : null}
      {status ? (
        <>
          <div class="task-summary">
            <span
              class={`badge state state-${stateName(status.state).toLowerCase()}`}
              data-state={stateName(status.state)}
            >
              {stateName(status.state)}
            </span>
            <span>
              <a href={links.tasks(new URLSearchParams({ type }))}>{type}</a>/{status.method}
            </span>
            <div class="actions">
              {can("cancel", type) && !isTerminal(status.state) ? (
                <button type="button" class="danger" onClick={cancel}>
                  Cancel task
                </button>
              ) : null}
              {can("operate", type) && deadLetter ? (
                <button type="button" onClick={retry}>
                  Retry dead letter
                </button>
              ) : null}
            </div>
          </div>
          {outcome ? (
            <p class="outcome" role="status">
              {outcome}
            </p>
          ) : null}
          {status.progress ? (
            <div class="progress">
              <label for="task-progress">Progress</label>
              <progress id="task-progress" max={1} value={status.progress.fraction} />
              <span>
                {Math.round(status.progress.fraction * 100)}% {status.progress.message}
              </span>
            </div>
          ) : null}
          <TaskDetails status={status} deadLetter={deadLetter} />
          <h2>Timeline</h2>
          <Timeline status={status} />
          <h2>Result</h2>
          {status.result ? (
            <JsonView any={status.result} registry={types.registry} />
          ) : (
            <p class="muted">
              {status.state === TaskState.SUCCEEDED
                ? "None."
                : isTerminal(status.state)
                  ? `None: the task ended ${stateName(status.state)}.`
                  : "Not yet: the task has not finished."}
            </p>
          )}
          <h2>Payload</h2>
          <PayloadView payload={payload} />
          {status.endpoints.length > 0 ? <Endpoints status={status} /> : null}
          {Object.keys(status.metadata).length > 0 ? <Metadata metadata={status.metadata} /> : null}
        </>
      ) : live.state !== "failed" ? (
        <p class="muted">Loading…</p>
      ) : null}
      {dialog}
    </section>
  );
}

/** The task's payload, read once per round with GetTask's include_payload. */
function usePayload(taskId: string, round: number): Payload {
  const [payload, setPayload] = useState<Payload>();
  useEffect(() => {
    let current = true;
    setPayload(undefined);
    taskService.getTask({ taskId, includePayload: true }).then(
      (response) => current && setPayload(response.payload ? { any: response.payload } : { notKept: true }),
      (error: unknown) => current && !refusedCredential(error) && setPayload({ error: errorMessage(error) }),
    );
    return () => {
      current = false;
    };
  }, [taskId, round]);
  return payload;
}

/** Whether the failed task has a dead letter (which may be retried). */
function useDeadLetter(taskId: string, failed: boolean, round: number): boolean {
  const [exists, setExists] = useState(false);
  useEffect(() => {
    let current = true;
    setExists(false);
    if (failed) {
      queueService.getDeadLetter({ taskId }).then(
        () => current && setExists(true),
        () => undefined,
      );
    }
    return () => {
      current = false;
    };
  }, [taskId, failed, round]);
  return exists;
}

function PayloadView({ payload }: { readonly payload: Payload }) {
  const { types } = useSession();
  if (payload === undefined) return <p class="muted">Loading…</p>;
  if ("any" in payload) return <JsonView any={payload.any} registry={types.registry} />;
  if ("error" in payload) return <p class="problem">{payload.error}</p>;
  return (
    <p class="muted">
      Not kept: the broker holds a task's payload only while it is delayed, queued or running, and in its dead letter.
      Once a task has finished, its payload is gone.
    </p>
  );
}

function TaskDetails({ status, deadLetter }: { readonly status: TaskStatus; readonly deadLetter: boolean }) {
  const rows: [string, string][] = [
    ["Attempts", `${status.attempt} of ${status.maxAttempts}`],
    ["Priority", PrioritySchema.values.find((v) => v.number === status.priority)?.localName ?? "—"],
    ["Delivery", DeliveryModeSchema.values.find((v) => v.number === status.delivery)?.localName ?? "—"],
    ["Worker", status.workerId || "—"],
    ["Submitted by", status.submittedBy || "—"],
    ["Idempotency key", status.idempotencyKey || "—"],
    ["Expires", formatTime(status.expiresAt)],
    ["Updated", formatTime(status.updatedAt)],
  ];
  if (status.returnedDeliveries > 0) rows.push(["Returned deliveries", String(status.returnedDeliveries)]);
  return (
    <dl class="details">
      {rows.map(([term, value]) => (
        <div key={term}>
          <dt>{term}</dt>
          <dd>{value}</dd>
        </div>
      ))}
      {status.parentTaskId ? (
        <div>
          <dt>Parent</dt>
          <dd>
            <a href={links.task(status.parentTaskId)}>{status.parentTaskId}</a>
          </dd>
        </div>
      ) : null}
      {status.children ? (
        <div>
          <dt>Children</dt>
          <dd data-children>
            {`${status.children.ended} of ${status.children.spawned} ended`}
            {status.children.failed > 0n ? `, ${status.children.failed} failed` : ""}
          </dd>
        </div>
      ) : null}
      {deadLetter ? (
        <div>
          <dt>Dead letter</dt>
          <dd>
            <a href={links.deadLetters(status.workerType)}>kept, with the dead letters of {status.workerType}</a>
          </dd>
        </div>
      ) : null}
    </dl>
  );
}

/** One line of the timeline. */
interface Moment {
  readonly atMs: number | undefined;
  readonly what: string;
  readonly detail?: string;
  readonly tone: "info" | "error" | "done" | "ended";
}

function errorMoment(error: TaskError, final: boolean): Moment {
  const retry = error.retryable && !final ? ", to be retried" : "";
  return {
    atMs: error.occurredAt && timestampMs(error.occurredAt),
    what: error.attempt > 0 ? `Attempt ${error.attempt} failed${retry}` : "Ended with an error",
    detail: `${errorCodeName(error.code)}: ${error.message}`,
    tone: "error",
  };
}

/** The task's life in time order: submitted, due, its attempts' errors, the latest start, the end. */
function Timeline({ status }: { readonly status: TaskStatus }) {
  const ms = (t: TaskStatus["createdAt"]) => t && timestampMs(t);
  const moments: Moment[] = [
    {
      atMs: ms(status.createdAt),
      what: "Submitted",
      ...(status.submittedBy ? { detail: `by ${status.submittedBy}` } : {}),
      tone: "info",
    },
  ];
  if (status.notBefore) moments.push({ atMs: ms(status.notBefore), what: "Due to start", tone: "info" });
  for (const error of status.errorHistory) moments.push(errorMoment(error, false));
  if (status.startedAt) {
    moments.push({
      atMs: ms(status.startedAt),
      what: `Attempt ${status.attempt} started`,
      ...(status.workerId ? { detail: `on ${status.workerId}` } : {}),
      tone: "info",
    });
  }
  if (status.error) moments.push(errorMoment(status.error, true));
  if (status.finishedAt) {
    const tone = status.state === TaskState.SUCCEEDED ? "done" : status.state === TaskState.FAILED ? "error" : "ended";
    moments.push({ atMs: ms(status.finishedAt), what: `Ended ${stateName(status.state)}`, tone });
  }
  moments.sort((a, b) => (a.atMs ?? Number.MAX_SAFE_INTEGER) - (b.atMs ?? Number.MAX_SAFE_INTEGER));
  return (
    <ol class="timeline">
      {moments.map((moment, i) => (
        <li key={i} class={`moment ${moment.tone}`}>
          <time>{moment.atMs === undefined ? "—" : formatMs(moment.atMs)}</time>
          <span class="what">{moment.what}</span>
          {moment.detail ? <span class="detail">{moment.detail}</span> : null}
        </li>
      ))}
    </ol>
  );
}

function Endpoints({ status }: { readonly status: TaskStatus }) {
  const { types } = useSession();
  return (
    <>
      <h2>Endpoints</h2>
      <table class="stacked">
        <thead>
          <tr>
            <th scope="col">Endpoint</th>
            <th scope="col">State</th>
            <th scope="col">Finished</th>
            <th scope="col">Result or error</th>
          </tr>
        </thead>
        <tbody>
          {status.endpoints.map((endpoint) => (
            <tr key={endpoint.endpoint}>
              <th scope="row" data-label="Endpoint" class="mono">
                {endpoint.endpoint}
              </th>
              <td data-label="State">{stateName(endpoint.state)}</td>
              <td data-label="Finished">{formatTime(endpoint.finishedAt)}</td>
              <td data-label="Result or error">
                {endpoint.result ? (
                  <JsonView any={endpoint.result} registry={types.registry} />
                ) : endpoint.error ? (
                  `${errorCodeName(endpoint.error.code)}: ${endpoint.error.message}`
                ) : (
                  "—"
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function Metadata({ metadata }: { readonly metadata: Readonly<Record<string, string>> }) {
  return (
    <>
      <h2>Metadata</h2>
      <dl class="details">
        {Object.entries(metadata).map(([key, value]) => (
          <div key={key}>
            <dt class="mono">{key}</dt>
            <dd class="mono">{value}</dd>
          </div>
        ))}
      </dl>
    </>
  );
}
