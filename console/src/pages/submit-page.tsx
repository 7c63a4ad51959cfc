import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { type Any, anyPack, durationFromMs } from "@bufbuild/protobuf/wkt";
import { useState } from "preact/hooks";
import { type Priority, PrioritySchema } from "../../../gen/taskwire/v1/task_pb.ts";
import { errorMessage, taskService } from "../api.ts";
import { type FormValues, formToJson, jsonToForm, MessageForm } from "../components/message-form.tsx";
import { links, navigate } from "../router.ts";
import { useCan, useSession } from "../session.ts";
import type { TaskKind } from "../task-types.ts";

/**
 * Submits a task: the kind (worker type and method) to choose, then a form
 * generated from its request message, or the request as JSON; then the new
 * task's page.
 */
export function SubmitPage({ workerType, method }: { readonly workerType: string; readonly method: string }) {
  const { types } = useSession();
  const can = useCan();
  const kinds = types.kinds.filter((kind) => can("submit", kind.workerType));
  const kind =
    kinds.find((k) => k.workerType === workerType && k.method === method) ??
    (workerType && !method ? kinds.find((k) => k.workerType === workerType) : undefined);
  return (
    <section aria-labelledby="page-title">
      <header class="page-header">
        <h1 id="page-title">Submit a task</h1>
      </header>
      {kinds.length === 0 ? <p class="muted">You may not submit tasks of any type here.</p> : null}
      {kinds.length > 0 ? (
        <div class="field">
          <label for="submit-kind">Task</label>
          <select
            id="submit-kind"
            value={kind ? `${kind.workerType}/${kind.method}` : ""}
            onChange={(event) => {
              const [type = "", name = ""] = (event.currentTarget as HTMLSelectElement).value.split("/");
              navigate(links.submit(type, name));
            }}
          >
            {kind ? null : <option value="">choose…</option>}
            {kinds.map((k) => (
              <option key={`${k.workerType}/${k.method}`} value={`${k.workerType}/${k.method}`}>
                {k.workerType}/{k.method}
              </option>
            ))}
          </select>
        </div>
      ) : null}
      {kind ? <SubmitForm key={`${kind.workerType}/${kind.method}`} kind={kind} /> : null}
    </section>
  );
}

function SubmitForm({ kind }: { readonly kind: TaskKind }) {
  const { types } = useSession();
  const [values, setValues] = useState<FormValues>({});
  const [json, setJson] = useState<string | undefined>();
  const [idempotencyKey, setIdempotencyKey] = useState("");
  const [priority, setPriority] = useState<Priority>(0);
  const [delaySeconds, setDelaySeconds] = useState("");
  const [problem, setProblem] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);

  const editJson = () => {
    setJson(JSON.stringify(formToJson(kind.request, values), null, 2));
    setProblem(undefined);
  };
  const editForm = () => {
    try {
      const { values: read, unsupported } = jsonToForm(kind.request, JSON.parse(json ?? "{}") as JsonValue);
      if (unsupported.length > 0) {
        setProblem(`The form cannot show ${unsupported.join(", ")}: keep editing the request as JSON.`);
        return;
      }
      setValues(read);
      setJson(undefined);
      setProblem(undefined);
    } catch (error) {
      setProblem(`The JSON cannot be read: ${(error as Error).message}`);
    }
  };
  const submit = async (event: Event) => {
    event.preventDefault();
    let payload: Any;
    try {
      const request = json === undefined ? formToJson(kind.request, values) : (JSON.parse(json) as JsonValue);
      payload = anyPack(kind.request, fromJson(kind.request, request, { registry: types.registry }));
    } catch (error) {
      setProblem(`The request is not a valid ${kind.request.typeName}: ${(error as Error).message}`);
      return;
    }
    const delay = Number(delaySeconds);
    if (delaySeconds.trim() && !(delay > 0)) {
      setProblem("The delay is a number of seconds above 0.");
      return;
    }
    setBusy(true);
    setProblem(undefined);
    try {
      const { taskId } = await taskService.submit({
        task: {
          workerType: kind.workerType,
          method: kind.method,
          payload,
          idempotencyKey: idempotencyKey.trim(),
          priority,
          ...(delay > 0 ? { schedule: { case: "delay", value: durationFromMs(delay * 1000) } } : {}),
        },
      });
      navigate(links.task(taskId));
    } catch (error) {
      setProblem(errorMessage(error));
      setBusy(false);
    }
  };
  return (
    <form class="submit-form" onSubmit={submit} aria-label={`Submit ${kind.workerType}/${kind.method}`}>
      <fieldset>
        <legend>
          Request <span class="mono muted">{kind.request.typeName}</span>
        </legend>
        {json === undefined ? (
          <>
            <MessageForm schema={kind.request} values={values} onChange={setValues} idPrefix="request" />
            <button type="button" class="link" onClick={editJson}>
              Edit as JSON
            </button>
          </>
        ) : (
          <>
            <label for="request-json">The request as Protobuf JSON</label>
            <textarea
              id="request-json"
              class="mono"
              rows={12}
              value={json}
              onInput={(event) => setJson((event.currentTarget as HTMLTextAreaElement).value)}
            />
            <button type="button" class="link" onClick={editForm}>
              Edit as a form
            </button>
          </>
        )}
      </fieldset>
      <fieldset>
        <legend>Options</legend>
        <div class="field">
          <label for="submit-key">Idempotency key</label>
          <input
            id="submit-key"
            type="text"
            value={idempotencyKey}
            onInput={(e) => setIdempotencyKey((e.currentTarget as HTMLInputElement).value)}
          />
        </div>
        <div class="field">
          <label for="submit-priority">Priority</label>
          <select
            id="submit-priority"
            value={String(priority)}
            onChange={(e) => setPriority(Number((e.currentTarget as HTMLSelectElement).value) as Priority)}
          >
            {PrioritySchema.values.map((v) => (
              <option key={v.number} value={String(v.number)}>
                {v.number === 0 ? "the method's default" : v.localName.toLowerCase()}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="submit-delay">Delay (seconds)</label>
          <input
            id="submit-delay"
            type="number"
            min="0"
            step="any"
            value={delaySeconds}
            onInput={(e) => setDelaySeconds((e.currentTarget as HTMLInputElement).value)}
          />
        </div>
      </fieldset>
      {problem ? (
        <p class="problem" role="alert">
          {problem}
        </p>
      ) : null}
      <div class="actions">
        <button type="submit" disabled={busy}>
          Submit task
        </button>
      </div>
    </form>
  );
}
