import { timestampMs } from "@bufbuild/protobuf/wkt";
import { useState } from "preact/hooks";
import type { QueueInfo, ThroughputPoint, WatchQueuesResponse } from "../../../gen/taskwire/v1/queue_service_pb.ts";
import { errorMessage, queueService } from "../api.ts";
import { useConfirm } from "../components/confirm-dialog.tsx";
import { LiveBadge } from "../components/live-badge.tsx";
import { ThroughputChart } from "../components/throughput-chart.tsx";
import { formatAge, formatCount, formatTime, useNow } from "../format.ts";
import { useLiveStream } from "../live.ts";
import { links } from "../router.ts";
import { useCan, useSession } from "../session.ts";

/** One queue as the page shows it: its state, and its finished tasks per 10-second step of the last hour. */
interface QueueView {
  readonly info: QueueInfo;
  /** By the step's start, in seconds since the epoch. */
  readonly points: ReadonlyMap<number, ThroughputPoint>;
}

const hourSeconds = 3600;

/**
 * Merges a WatchQueues message into the queues shown: the first message of a
 * connection replaces them; later ones carry each queue's state and the
 * counts of steps since the previous message, added to those of the same step.
 */
function merged(
  shown: ReadonlyMap<string, QueueView>,
  message: WatchQueuesResponse,
  first: boolean,
): Map<string, QueueView> {
  const next = new Map<string, QueueView>();
  const oldest = Math.floor(Date.now() / 1000) - hourSeconds;
  for (const snapshot of message.queues) {
    const info = snapshot.queue;
    if (!info) continue;
    const points = new Map(first ? [] : (shown.get(info.workerType)?.points ?? []));
    for (const point of snapshot.throughput) {
      const start = Number(point.start?.seconds ?? 0n);
      const earlier = points.get(start);
      points.set(
        start,
        earlier
          ? {
              ...point,
              succeeded: earlier.succeeded + point.succeeded,
              failed: earlier.failed + point.failed,
              retried: earlier.retried + point.retried,
              cancelled: earlier.cancelled + point.cancelled,
            }
          : point,
      );
    }
    for (const start of points.keys()) if (start < oldest) points.delete(start);
    next.set(info.workerType, { info, points });
  }
  return next;
}

/** Every worker type's queue, live: counts, pause state, oldest waiting task, throughput, and its actions. */
export function QueuesPage() {
  const [queues, setQueues] = useState<ReadonlyMap<string, QueueView>>(new Map());
  const live = useLiveStream(
    "queues",
    (signal) => queueService.watchQueues({}, { signal }),
    (message, first) => setQueues((shown) => merged(shown, message, first)),
  );
  const now = useNow();
  const [dialog, confirm] = useConfirm();
  const sorted = [...queues.values()].sort((a, b) => a.info.workerType.localeCompare(b.info.workerType));
  return (
    <section aria-labelledby="page-title">
      <header class="page-header">
        <h1 id="page-title">Queues</h1>
        <LiveBadge live={live} />
      </header>
      {live.state === "failed" ? <p class="problem">{live.error}</p> : null}
      {live.state !== "connecting" && sorted.length === 0 ? (
        <p class="muted">No worker type is served to you here.</p>
      ) : null}
      <div class="cards">
        {sorted.map((queue) => (
          <QueueCard key={queue.info.workerType} queue={queue} now={now} confirm={confirm} />
        ))}
      </div>
      {dialog}
    </section>
  );
}

function QueueCard({
  queue,
  now,
  confirm,
}: {
  readonly queue: QueueView;
  readonly now: number;
  readonly confirm: ReturnType<typeof useConfirm>[1];
}) {
  const { info, points } = queue;
  const type = info.workerType;
  const can = useCan();
  const { name } = useSession();
  const [outcome, setOutcome] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const act = async (action: () => Promise<string>) => {
    setBusy(true);
    try {
      setOutcome(await action());
    } catch (error) {
      setOutcome(errorMessage(error));
    } finally {
      setBusy(false);
    }
  };
  const pause = () =>
    act(async () => {
      await queueService.pauseQueue({ workerType: type });
      return `Paused ${type}.`;
    });
  const resume = () =>
    act(async () => {
      await queueService.resumeQueue({ workerType: type });
      return `Resumed ${type}.`;
    });
  const purge = async () => {
    const unfinished = info.queued + info.scheduled + info.running;
    const confirmed = await confirm({
      title: `Purge the queue of ${type}?`,
      body: (
        <p>
          Every unfinished task of {type} ends CANCELLED: about {formatCount(unfinished)} now (
          {formatCount(info.queued)} queued, {formatCount(info.scheduled)} scheduled, {formatCount(info.running)}{" "}
          running). Tasks submitted after the purge starts are kept.
        </p>
      ),
      confirm: "Purge the queue",
    });
    if (!confirmed) return;
    await act(async () => {
      const { purged } = await queueService.purgeQueue({
        workerType: type,
        reason: `purged from the console by ${name}`,
      });
      return `Purged ${formatCount(purged)} tasks of ${type}.`;
    });
  };
  const oldest = info.oldestQueuedAt ? formatAge(now - timestampMs(info.oldestQueuedAt)) : "—";
  const headingId = `queue-${type}`;
  return (
    <section class="card queue" aria-labelledby={headingId} data-queue={type}>
      <header class="card-header">
        <h2 id={headingId}>
          <a href={links.tasks(new URLSearchParams({ type }))}>{type}</a>
        </h2>
        {info.paused ? (
          <span class="badge paused">paused{info.pausedUntil ? ` until ${formatTime(info.pausedUntil)}` : ""}</span>
        ) : null}
      </header>
      <dl class="counts">
        <div>
          <dt>queued</dt>
          <dd data-count="queued">{formatCount(info.queued)}</dd>
        </div>
        <div>
          <dt>scheduled</dt>
          <dd data-count="scheduled">{formatCount(info.scheduled)}</dd>
        </div>
        <div>
          <dt>running</dt>
          <dd data-count="running">{formatCount(info.running)}</dd>
        </div>
        <div>
          <dt>dead letters</dt>
          <dd data-count="dead-letters">
            <a href={links.deadLetters(type)} aria-label={`Dead letters of ${type}: ${formatCount(info.deadLetters)}`}>
              {formatCount(info.deadLetters)}
            </a>
          </dd>
        </div>
        <div>
          <dt>workers</dt>
          <dd data-count="workers">
            <a href={links.workers(type)} aria-label={`Workers of ${type}: ${info.workers}`}>
              {info.workers}
            </a>
          </dd>
        </div>
        <div>
          <dt>oldest waiting</dt>
          <dd data-count="oldest">{oldest}</dd>
        </div>
      </dl>
      <ThroughputChart points={points} now={now} />
      <div class="actions">
        {can("operate", type) ? (
          <>
            {info.paused ? (
              <button type="button" disabled={busy} onClick={resume}>
                Resume
              </button>
            ) : (
              <button type="button" disabled={busy} onClick={pause}>
                Pause
              </button>
            )}
            <button type="button" class="danger" disabled={busy} onClick={purge}>
              Purge queue
            </button>
          </>
        ) : null}
        {can("submit", type) ? (
          <a class="button" href={links.submit(type)}>
            Submit a task
          </a>
        ) : null}
      </div>
      {outcome ? (
        <p class="outcome" role="status">
          {outcome}
        </p>
      ) : null}
    </section>
  );
}
