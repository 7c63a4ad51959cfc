import { Code, ConnectError } from "@connectrpc/connect";
import { useEffect, useRef, useState } from "preact/hooks";
import { errorMessage, refusedCredential } from "./api.ts";

/** A stream's state: opening, receiving, waiting to open again, done, or given up. */
export type LiveState = "connecting" | "live" | "reconnecting" | "ended" | "failed";

/** What a page shows of its stream. */
export interface Live {
  readonly state: LiveState;
  /** Why the stream broke or was given up, while it is. */
  readonly error: string | undefined;
}

/** Errors that another try would meet again: the stream is given up. */
const permanent = new Set([Code.PermissionDenied, Code.NotFound, Code.InvalidArgument, Code.Unimplemented]);

/** The delay before the `attempt`th reconnection: 0.5 s doubling to 15 s, spread by a fifth. */
function backoffMs(attempt: number): number {
  return Math.min(15_000, 500 * 2 ** attempt) * (0.9 + Math.random() * 0.2);
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const aborted = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", aborted);
      resolve();
    }, ms);
    signal.addEventListener("abort", aborted, { once: true });
  });
}

/**
 * Follows one of the gateway's server streams while the component lives (and
 * anew when `key` changes): `onMessage` gets each message, with `first` true
 * for the first of each connection (a whole state, to replace what was
 * shown). When the stream breaks it is opened again with backoff; it is given
 * up on an error that would recur, and done when `endsWith(message)` says so.
 */
export function useLiveStream<T>(
  key: string,
  open: (signal: AbortSignal) => AsyncIterable<T>,
  onMessage: (message: T, first: boolean) => void,
  endsWith: (message: T) => boolean = () => false,
): Live {
  const [live, setLive] = useState<Live>({ state: "connecting", error: undefined });
  // The latest callbacks, without opening the stream again when they change.
  const callbacks = useRef({ open, onMessage, endsWith });
  callbacks.current = { open, onMessage, endsWith };
  useEffect(() => {
    const abort = new AbortController();
    setLive({ state: "connecting", error: undefined });
    const follow = async () => {
      for (let attempt = 0; !abort.signal.aborted; ) {
        let first = true;
        try {
          for await (const message of callbacks.current.open(abort.signal)) {
            attempt = 0;
            if (first) setLive({ state: "live", error: undefined });
            callbacks.current.onMessage(message, first);
            first = false;
            if (callbacks.current.endsWith(message)) {
              setLive({ state: "ended", error: undefined });
              return;
            }
          }
          // Ended by the gateway (it is shutting down): open it again.
          setLive({ state: "reconnecting", error: "the gateway ended the stream" });
        } catch (error) {
          if (abort.signal.aborted || refusedCredential(error)) return;
          const failed = permanent.has(ConnectError.from(error).code);
          setLive({ state: failed ? "failed" : "reconnecting", error: errorMessage(error) });
          if (failed) return;
        }
        await pause(backoffMs(attempt++), abort.signal);
      }
    };
    void follow();
    return () => abort.abort();
  }, [key]);
  return live;
}
