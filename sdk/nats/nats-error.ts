import { Code } from "@connectrpc/connect";
import { JetStreamApiError } from "@nats-io/jetstream";
import { errors } from "@nats-io/transport-node";
import { TaskError } from "../core/index.ts";

/**
 * Translates an error from the NATS client into a TaskError with the right
 * code. The one place where NATS errors meet Taskwire's codes (connect-node's
 * node-error.ts is the model); `context` says what was being done.
 */
export function fromNatsError(error: unknown, context: string): TaskError {
  if (error instanceof TaskError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const fail = (code: Code, text = message) => new TaskError(`${context}: ${text}`, code, { cause: error });
  if (error instanceof JetStreamApiError) {
    switch (error.code) {
      // maximum messages exceeded: the queue is at its bound (discard new).
      case 10077:
        return fail(Code.ResourceExhausted, "the queue is full");
      // maximum bytes exceeded: the queue is at its byte bound.
      case 10047:
        return fail(Code.ResourceExhausted, "the queue is out of space");
      // message size exceeds maximum allowed.
      case 10054:
        return fail(Code.ResourceExhausted, "the task is larger than the stream allows");
      // stream not found: nobody provisioned this worker type on this server.
      case 10059:
        return fail(Code.FailedPrecondition, "the worker type's stream does not exist");
      // JetStream not enabled / temporarily unavailable.
      case 10039:
      case 10008:
        return fail(Code.Unavailable);
    }
    if (/maximum messages exceeded|maximum bytes exceeded/i.test(message)) return fail(Code.ResourceExhausted);
    return fail(Code.Internal);
  }
  // Nobody answered the publish: JetStream is down or the stream has no leader.
  if (error instanceof errors.NoRespondersError)
    return fail(Code.Unavailable, "JetStream is not responding (no responders)");
  // The request or PubAck did not arrive in time: it may or may not have been stored.
  if (error instanceof errors.TimeoutError) return fail(Code.Unavailable, "NATS did not answer in time");
  // The connection is closed, draining or failed to connect.
  if (
    error instanceof errors.ClosedConnectionError ||
    error instanceof errors.DrainingConnectionError ||
    error instanceof errors.ConnectionError
  ) {
    return fail(Code.Unavailable, "not connected to NATS");
  }
  if (error instanceof errors.RequestError) return fail(Code.Unavailable);
  if (error instanceof errors.PermissionViolationError) return fail(Code.PermissionDenied);
  if (error instanceof errors.InvalidSubjectError || error instanceof errors.InvalidArgumentError)
    return fail(Code.InvalidArgument);
  return fail(Code.Internal);
}
