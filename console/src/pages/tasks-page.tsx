import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate, timestampMs } from "@bufbuild/protobuf/wkt";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { type TaskState, TaskStateSchema, type TaskStatus } from "../../../gen/taskwire/v1/task_pb.ts";
import type { ListTasksRequestSchema } from "../../../gen/taskwire/v1/task_service_pb.ts";
import { errorMessage, refusedCredential, taskService } from "../api.ts";
import { VirtualList } from "../components/virtual-list.tsx";
import { formatMs, listedStates, stateName } from "../format.ts";
import { links, navigate } from "../router.ts";
import { useCan, useSession } from "../session.ts";
import { searchableFields } from "../task-types.ts";

/** A ListTasks request: the filters, to which each call adds its page. */
type ListTasksInit = MessageInitShape<typeof ListTasksRequestSchema>;

/** The list's filters, as the page's query holds them (`#/tasks?type=hasher&state=FAILED`). */
interface Filters {
  readonly type: string;
  readonly states: readonly string[];
  /** datetime-local values, in the reader's time zone. */
  readonly since: string;
  readonly until: string;
  readonly key: string;
  readonly field: string;
  readonly value: string;
}

function filtersOf(query: URLSearchParams): Filters {
  const get = (name: string) => query.get(name) ?? "";
  return {
    type: get("type"),
    states: query.getAll("state"),
    since: get("since"),
    until: get("until"),
    key: get("key"),
    field: get("field"),
    value: get("value"),
  };
}

function queryOf(filters: Filters): URLSearchParams {
  const query = new URLSearchParams();
  for (const name of ["type", "since", "until", "key", "field", "value"] as const)
    if (filters[name]) query.set(name, filters[name]);
  for (const state of filters.states) query.append("state", state);
  return query;
}

/** The ListTasks request for the filters (without paging). */
function requestOf(filters: Filters): ListTasksInit {
  const time = (local: string) => (local ? timestampFromDate(new Date(local)) : undefined);
  return {
    workerType: filters.type,
    states: filters.states
      .map((name) => TaskStateSchema.values.find((v) => v.localName === name)?.number)
      .filter((state): state is TaskState => state !== undefined),
    since: time(filters.since),
    until: time(filters.until),
    idempotencyKey: filters.key,
    fieldName: filters.field,
    fieldValue: filters.field ? filters.value : "",
  };
}

/** What a row shows of a task: kept small, for lists of 100,000 tasks. */
interface TaskRow {
  readonly taskId: string;
  readonly kind: string;
  readonly state: TaskState;
  readonly createdMs: number | undefined;
  readonly attempts: string;
}

function rowOf(status: TaskStatus): TaskRow {
  return {
    taskId: status.taskId,
    kind: `${status.workerType}/${status.method}`,
    state: status.state,
    createdMs: status.createdAt && timestampMs(status.createdAt),
    attempts: `${status.attempt}/${status.maxAttempts}`,
  };
}

/** Tasks per ListTasks call. */
const pageSize = 250;

/** A list being loaded: its rows so far, where the next page starts, and whether it is all there. */
interface Loading {
  readonly rows: TaskRow[];
  token: string;
  busy: boolean;
  done: boolean;
}

/**
 * The tasks of a filter, loaded a page at a time: the first at once, the
 * next ones as `more()` asks. A new filter (`key`) starts over; pages of an
 * older one that arrive late are dropped.
 */
function useTaskList(request: ListTasksInit | undefined, key: string) {
  const loading = useRef<Loading>({ rows: [], token: "", busy: false, done: true });
  const latest = useRef(request);
  latest.current = request;
  const [view, setView] = useState<{ count: number; done: boolean; error?: string }>({ count: 0, done: true });
  const more = useCallback(async () => {
    const list = loading.current;
    const request = latest.current;
    if (!request || list.busy || list.done) return;
    list.busy = true;
    try {
      // A page filtered by state may be empty while more remain: go on until rows come, or the end.
      for (let tries = 0; tries < 10; tries++) {
        const page = await taskService.listTasks({ ...request, pageSize, pageToken: list.token });
        if (list !== loading.current) return;
        for (const status of page.tasks) list.rows.push(rowOf(status));
        list.token = page.nextPageToken;
        list.done = page.nextPageToken === "";
        setView({ count: list.rows.length, done: list.done });
        if (list.done || page.tasks.length > 0) break;
      }
    } catch (error) {
      if (list !== loading.current || refusedCredential(error)) return;
      list.done = true;
      setView({ count: list.rows.length, done: true, error: errorMessage(error) });
    } finally {
      list.busy = false;
    }
  }, []);
  useEffect(() => {
    loading.current = { rows: [], token: "", busy: false, done: latest.current === undefined };
    setView({ count: 0, done: loading.current.done });
    void more();
  }, [key]);
  return { rows: loading.current.rows, ...view, more };
}

/** Tasks by type, state and time, or by idempotency key or a searchable request field: a virtualised, paged list. */
export function TasksPage({ query }: { readonly query: URLSearchParams }) {
  const { types } = useSession();
  const can = useCan();
  const filters = filtersOf(query);
  const key = queryOf(filters).toString();
  const allTypes = can("read", "*");
  const readable = types.workerTypes.filter((type) => can("read", type));
  const chosen = filters.type || allTypes;
  const list = useTaskList(chosen ? requestOf(filters) : undefined, key);
  const narrow = useNarrow();
  // Rows wrap onto two lines at phone width.
  const rowHeight = narrow ? 64 : 44;
  return (
    <section aria-labelledby="page-title" class="tasks-page">
      <header class="page-header">
        <h1 id="page-title">Tasks</h1>
      </header>
      <details class="filter-box" open={!narrow}>
        <summary>Filters</summary>
        <TaskFilters key={key} filters={filters} types={readable} allTypes={allTypes} />
      </details>
      {chosen ? (
        <VirtualList
          label="Tasks"
          count={list.count}
          rowHeight={rowHeight}
          resetKey={key}
          onNearEnd={() => void list.more()}
          renderRow={(index) => <TaskRowView row={list.rows[index]} />}
          footer={
            list.error ? (
              <p class="problem">{list.error}</p>
            ) : list.done ? (
              <p class="muted">
                {list.count === 0 ? "No task matches." : `${list.count.toLocaleString()} tasks, the end of the list.`}
              </p>
            ) : (
              <p class="muted">{list.count.toLocaleString()} tasks loaded, loading more…</p>
            )
          }
        />
      ) : (
        <p class="muted">Choose a worker type: you may read the tasks of {readable.join(", ") || "none"}.</p>
      )}
    </section>
  );
}

function TaskRowView({ row }: { readonly row: TaskRow | undefined }) {
  if (!row) return null;
  const state = stateName(row.state);
  return (
    <a class="task-row" href={links.task(row.taskId)}>
      <span class="mono id">{row.taskId}</span>
      <span class="kind">{row.kind}</span>
      <span class={`badge state state-${state.toLowerCase()}`}>{state}</span>
      <span class="time">{row.createdMs === undefined ? "—" : formatMs(row.createdMs)}</span>
      <span class="attempts" title="attempt / attempts allowed">
        {row.attempts}
      </span>
    </a>
  );
}

/** Whether the page is phone-wide (the stylesheet's one-column width), following it as it changes. */
function useNarrow(): boolean {
  const query = "(max-width: 640px)";
  const [narrow, setNarrow] = useState(() => matchMedia(query).matches);
  useEffect(() => {
    const media = matchMedia(query);
    const follow = () => setNarrow(media.matches);
    media.addEventListener("change", follow);
    return () => media.removeEventListener("change", follow);
  }, []);
  return narrow;
}

function TaskFilters({
  filters,
  types,
  allTypes,
}: {
  readonly filters: Filters;
  readonly types: readonly string[];
  readonly allTypes: boolean;
}) {
  const session = useSession();
  const [draft, setDraft] = useState(filters);
  const [taskId, setTaskId] = useState("");
  const fields = draft.type ? searchableFields(session.types, draft.type) : [];
  const set = (name: keyof Filters) => (event: Event) =>
    setDraft({ ...draft, [name]: (event.currentTarget as HTMLInputElement).value });
  const toggle = (state: string) =>
    setDraft({
      ...draft,
      states: draft.states.includes(state) ? draft.states.filter((s) => s !== state) : [...draft.states, state],
    });
  const apply = (event: Event) => {
    event.preventDefault();
    if (taskId.trim()) navigate(links.task(taskId.trim()));
    else navigate(links.tasks(queryOf(draft)));
  };
  return (
    <form class="filters" onSubmit={apply} aria-label="Filter tasks">
      <div class="field">
        <label for="filter-type">Worker type</label>
        <select
          id="filter-type"
          value={draft.type}
          onChange={(e) => setDraft({ ...draft, type: (e.currentTarget as HTMLSelectElement).value, field: "" })}
        >
          {allTypes ? <option value="">all types</option> : <option value="">choose…</option>}
          {types.map((type) => (
            <option key={type} value={type}>
              {type}
            </option>
          ))}
        </select>
      </div>
      <fieldset class="states">
        <legend>States</legend>
        {listedStates.map((state) => {
          const name = stateName(state);
          return (
            <label key={name} class="check">
              <input type="checkbox" checked={draft.states.includes(name)} onChange={() => toggle(name)} />
              {name.toLowerCase()}
            </label>
          );
        })}
      </fieldset>
      <div class="field">
        <label for="filter-since">Since</label>
        <input id="filter-since" type="datetime-local" step="1" value={draft.since} onInput={set("since")} />
      </div>
      <div class="field">
        <label for="filter-until">Until</label>
        <input id="filter-until" type="datetime-local" step="1" value={draft.until} onInput={set("until")} />
      </div>
      <div class="field">
        <label for="filter-key">Idempotency key</label>
        <input
          id="filter-key"
          type="text"
          value={draft.key}
          onInput={set("key")}
          disabled={!draft.type}
          placeholder={draft.type ? "" : "choose a type first"}
        />
      </div>
      <div class="field">
        <label for="filter-field">Request field</label>
        <select id="filter-field" value={draft.field} onChange={set("field")} disabled={fields.length === 0}>
          <option value="">{fields.length === 0 ? "none searchable" : "any"}</option>
          {fields.map((field) => (
            <option key={field.name} value={field.name}>
              {field.name}
            </option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for="filter-value">Field value</label>
        <input id="filter-value" type="text" value={draft.value} onInput={set("value")} disabled={!draft.field} />
      </div>
      <div class="field">
        <label for="filter-id">Task id</label>
        <input
          id="filter-id"
          type="search"
          class="mono"
          value={taskId}
          placeholder="go to a task"
          onInput={(e) => setTaskId((e.currentTarget as HTMLInputElement).value)}
        />
      </div>
      <div class="actions">
        <button type="submit">Apply filters</button>
        <a href={links.tasks()}>Clear</a>
      </div>
    </form>
  );
}
