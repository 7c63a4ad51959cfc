import { useState } from "preact/hooks";
import type { WorkerInstance } from "../../../gen/taskwire/v1/worker_service_pb.ts";
import { workerService } from "../api.ts";
import { LiveBadge } from "../components/live-badge.tsx";
import { formatAgo, formatTime, useNow } from "../format.ts";
import { useLiveStream } from "../live.ts";
import { links } from "../router.ts";

/** Every live worker instance (of one type, with `?type=`), live: host, pid, what it runs, its last heartbeat. */
export function WorkersPage({ workerType }: { readonly workerType: string }) {
  const [workers, setWorkers] = useState<readonly WorkerInstance[]>([]);
  const live = useLiveStream(
    `workers:${workerType}`,
    (signal) => workerService.watchWorkers({ workerType }, { signal }),
    (message) => setWorkers(message.workers),
  );
  const now = useNow();
  return (
    <section aria-labelledby="page-title">
      <header class="page-header">
        <h1 id="page-title">Workers{workerType ? ` of ${workerType}` : ""}</h1>
        <LiveBadge live={live} />
        {workerType ? <a href={links.workers()}>all types</a> : null}
      </header>
      {live.state === "failed" ? <p class="problem">{live.error}</p> : null}
      <p class="muted">
        {workers.length} live instance{workers.length === 1 ? "" : "s"}
      </p>
      {workers.length > 0 ? (
        <table class="stacked workers">
          <thead>
            <tr>
              <th scope="col">Worker</th>
              <th scope="col">Host</th>
              <th scope="col">PID</th>
              <th scope="col">Running</th>
              <th scope="col">Started</th>
              <th scope="col">Last heartbeat</th>
              <th scope="col">Runtime</th>
            </tr>
          </thead>
          <tbody>
            {workers.map((worker) => (
              <tr key={worker.workerId} data-worker={worker.workerId}>
                <th scope="row" data-label="Worker" class="mono">
                  {worker.workerId}
                </th>
                <td data-label="Host">{worker.host}</td>
                <td data-label="PID" class="mono">
                  {worker.pid}
                </td>
                <td data-label="Running">
                  <ul class="loads">
                    {worker.types.map((load) => (
                      <li key={load.workerType}>
                        <a href={links.tasks(new URLSearchParams({ type: load.workerType, state: "RUNNING" }))}>
                          {load.workerType}
                        </a>{" "}
                        {load.running}/{load.concurrency}
                      </li>
                    ))}
                  </ul>
                </td>
                <td data-label="Started">{formatTime(worker.startedAt)}</td>
                <td data-label="Last heartbeat">{formatAgo(worker.heartbeatAt, now)}</td>
                <td data-label="Runtime">{worker.runtime}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
