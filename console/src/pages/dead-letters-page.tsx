import { useEffect, useRef, useState } from "preact/hooks";
import type { DeadLetter } from "../../../gen/taskwire/v1/queue_service_pb.ts";
import { errorMessage, queueService, refusedCredential } from "../api.ts";
import { useConfirm } from "../components/confirm-dialog.tsx";
import { errorCodeName, formatCount, formatTime } from "../format.ts";
import { links } from "../router.ts";
import { useCan } from "../session.ts";

/** Dead letters per ListDeadLetters call. */
const pageSize = 100;
/** RetryDeadLetter calls in flight at once. */
const retriesInFlight = 8;

/** What the page holds: the dead letters loaded so far, where the next page starts, the type's total. */
interface Letters {
  readonly letters: readonly DeadLetter[];
  readonly nextPageToken: string;
  readonly total: bigint;
}

/**
 * The dead letters of a worker type, oldest first, a page at a time: select
 * some or all, then retry them (queued again with fresh attempts) or purge
 * them, after a dialog that shows how many.
 */
export function DeadLettersPage({ workerType }: { readonly workerType: string }) {
  const can = useCan();
  const [data, setData] = useState<Letters | undefined>();
  const [problem, setProblem] = useState<string | undefined>();
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [outcome, setOutcome] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const [round, setRound] = useState(0);
  const [dialog, confirm] = useConfirm();

  /** The latest load: an answer to an older one (another type's, a page superseded) is dropped. */
  const latest = useRef(0);
  const load = async (pageToken: string, before: readonly DeadLetter[]) => {
    const mine = ++latest.current;
    try {
      const [page, { queue }] = await Promise.all([
        queueService.listDeadLetters({ workerType, pageSize, pageToken }),
        queueService.getQueue({ workerType }),
      ]);
      if (mine !== latest.current) return;
      setData({
        letters: [...before, ...page.deadLetters],
        nextPageToken: page.nextPageToken,
        total: queue?.deadLetters ?? 0n,
      });
      setProblem(undefined);
    } catch (error) {
      if (mine === latest.current && !refusedCredential(error)) setProblem(errorMessage(error));
    }
  };
  useEffect(() => {
    setData(undefined);
    setSelected(new Set());
    void load("", []);
  }, [workerType, round]);

  const ids = data?.letters.map((l) => l.status?.taskId ?? "").filter(Boolean) ?? [];
  const allSelected = ids.length > 0 && ids.every((id) => selected.has(id));
  const toggle = (id: string) => {
    const next = new Set(selected);
    if (!next.delete(id)) next.add(id);
    setSelected(next);
  };
  const plural = (n: bigint | number) => `${formatCount(n)} dead letter${n === 1 || n === 1n ? "" : "s"}`;

  const run = async (work: () => Promise<string>) => {
    setBusy(true);
    setOutcome("Working…");
    try {
      setOutcome(await work());
    } catch (error) {
      setOutcome(errorMessage(error));
    } finally {
      setBusy(false);
      setRound((r) => r + 1);
    }
  };
  const retry = async (taskIds: readonly string[] | "all") => {
    const count = taskIds === "all" ? (data?.total ?? 0n) : taskIds.length;
    const confirmed = await confirm({
      title: `Retry ${plural(count)} of ${workerType}?`,
      body: <p>Each task is queued again as it was submitted, with a fresh count of attempts, and keeps its id.</p>,
      confirm: `Retry ${plural(count)}`,
    });
    if (!confirmed) return;
    await run(async () => {
      const failures: string[] = [];
      let retried = 0;
      const all = taskIds === "all" ? everyDeadLetter(workerType, Number(count)) : taskIds;
      await eachAtMost(all, retriesInFlight, async (taskId) => {
        try {
          await queueService.retryDeadLetter({ taskId });
          retried++;
          setOutcome(`Retried ${formatCount(retried)} of ${formatCount(count)}…`);
        } catch (error) {
          failures.push(`${taskId}: ${errorMessage(error)}`);
        }
      });
      return `Retried ${plural(retried)}.${failures.length > 0 ? ` Not retried: ${failures.join("; ")}` : ""}`;
    });
  };
  const purge = async (taskIds: readonly string[] | "all") => {
    const count = taskIds === "all" ? (data?.total ?? 0n) : taskIds.length;
    const confirmed = await confirm({
      title: `Purge ${plural(count)} of ${workerType}?`,
      body: <p>The tasks stay FAILED; what they were submitted with is gone for good, and cannot be retried.</p>,
      confirm: `Purge ${plural(count)}`,
    });
    if (!confirmed) return;
    await run(async () => {
      const { purged } = await queueService.purgeDeadLetters({
        workerType,
        taskIds: taskIds === "all" ? [] : [...taskIds],
      });
      return `Purged ${plural(purged)}.`;
    });
  };

  const operate = can("operate", workerType);
  const chosen = ids.filter((id) => selected.has(id));
  return (
    <section aria-labelledby="page-title">
      <header class="page-header">
        <h1 id="page-title">Dead letters of {workerType}</h1>
        {data ? (
          <span class="muted" data-count="dead-letters">
            {plural(data.total)}
          </span>
        ) : null}
      </header>
      {problem ? <p class="problem">{problem}</p> : null}
      {operate && data && data.total > 0n ? (
        <div class="actions">
          <button type="button" disabled={busy || chosen.length === 0} onClick={() => retry(chosen)}>
            Retry selected ({chosen.length})
          </button>
          <button type="button" class="danger" disabled={busy || chosen.length === 0} onClick={() => purge(chosen)}>
            Purge selected ({chosen.length})
          </button>
          <button type="button" disabled={busy} onClick={() => retry("all")}>
            Retry all ({formatCount(data.total)})
          </button>
          <button type="button" class="danger" disabled={busy} onClick={() => purge("all")}>
            Purge all ({formatCount(data.total)})
          </button>
        </div>
      ) : null}
      {outcome ? (
        <p class="outcome" role="status">
          {outcome}
        </p>
      ) : null}
      {data && data.letters.length === 0 ? <p class="muted">No dead letters.</p> : null}
      {data && data.letters.length > 0 ? (
        <table class="stacked dead-letters">
          <thead>
            <tr>
              {operate ? (
                <th scope="col" class="select">
                  <input
                    type="checkbox"
                    aria-label="Select every dead letter shown"
                    checked={allSelected}
                    onChange={() => setSelected(allSelected ? new Set() : new Set(ids))}
                  />
                </th>
              ) : null}
              <th scope="col">Task</th>
              <th scope="col">Method</th>
              <th scope="col">Dead since</th>
              <th scope="col">Attempts</th>
              <th scope="col">Error</th>
            </tr>
          </thead>
          <tbody>
            {data.letters.map((letter) => {
              const status = letter.status;
              const id = status?.taskId ?? "";
              return (
                <tr key={id} data-task={id}>
                  {operate ? (
                    <td class="select" data-label="Select">
                      <input
                        type="checkbox"
                        aria-label={`Select ${id}`}
                        checked={selected.has(id)}
                        onChange={() => toggle(id)}
                      />
                    </td>
                  ) : null}
                  <th scope="row" data-label="Task" class="mono">
                    <a href={links.task(id)}>{id}</a>
                  </th>
                  <td data-label="Method">{status?.method}</td>
                  <td data-label="Dead since">{formatTime(letter.deadAt)}</td>
                  <td data-label="Attempts">
                    {status?.attempt} of {status?.maxAttempts}
                  </td>
                  <td data-label="Error">
                    {status?.error ? `${errorCodeName(status.error.code)}: ${status.error.message}` : "—"}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : null}
      {data?.nextPageToken ? (
        <button type="button" onClick={() => load(data.nextPageToken, data.letters)}>
          Load more
        </button>
      ) : null}
      {dialog}
    </section>
  );
}

/**
 * The ids of the type's dead letters, page after page, at most `limit`: a
 * retried task that fails for good again joins the end and is not retried twice.
 */
async function* everyDeadLetter(workerType: string, limit: number): AsyncGenerator<string> {
  const seen = new Set<string>();
  let pageToken = "";
  do {
    const page = await queueService.listDeadLetters({ workerType, pageSize: 1000, pageToken });
    for (const letter of page.deadLetters) {
      const id = letter.status?.taskId;
      if (!id || seen.has(id)) continue;
      if (seen.size >= limit) return;
      seen.add(id);
      yield id;
    }
    pageToken = page.nextPageToken;
  } while (pageToken);
}

/** Calls `work` for each item, at most `limit` at once; resolves once every call has ended. */
async function eachAtMost(
  items: AsyncIterable<string> | Iterable<string>,
  limit: number,
  work: (item: string) => Promise<void>,
): Promise<void> {
  const running = new Set<Promise<void>>();
  for await (const item of items) {
    if (running.size >= limit) await Promise.race(running);
    const call: Promise<void> = work(item).finally(() => running.delete(call));
    running.add(call);
  }
  await Promise.all(running);
}
