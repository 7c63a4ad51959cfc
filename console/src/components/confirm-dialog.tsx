import type { ComponentChildren, VNode } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

/** What a confirmation asks. */
export interface ConfirmRequest {
  readonly title: string;
  /** What will happen, with the counts involved. */
  readonly body: ComponentChildren;
  /** The confirming button's label, e.g. "Purge 12 dead letters". */
  readonly confirm: string;
}

/**
 * A modal dialog that asks before an action: returns the dialog to render and
 * `ask`, which opens it and resolves to whether the caller confirmed.
 */
export function useConfirm(): [VNode | null, (request: ConfirmRequest) => Promise<boolean>] {
  const [request, setRequest] = useState<ConfirmRequest | undefined>();
  const answer = useRef<(confirmed: boolean) => void>(() => {});
  const ask = (next: ConfirmRequest) =>
    new Promise<boolean>((resolve) => {
      answer.current(false);
      answer.current = resolve;
      setRequest(next);
    });
  const close = (confirmed: boolean) => {
    setRequest(undefined);
    answer.current(confirmed);
    answer.current = () => {};
  };
  return [request ? <ConfirmDialog request={request} onClose={close} /> : null, ask];
}

function ConfirmDialog({
  request,
  onClose,
}: {
  readonly request: ConfirmRequest;
  readonly onClose: (confirmed: boolean) => void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    dialog.current?.showModal();
  }, []);
  return (
    <dialog ref={dialog} class="confirm" aria-labelledby="confirm-title" onCancel={() => onClose(false)}>
      <h2 id="confirm-title">{request.title}</h2>
      <div class="confirm-body">{request.body}</div>
      <div class="actions">
        <button type="button" onClick={() => onClose(false)}>
          Cancel
        </button>
        <button type="button" class="danger" onClick={() => onClose(true)}>
          {request.confirm}
        </button>
      </div>
    </dialog>
  );
}
