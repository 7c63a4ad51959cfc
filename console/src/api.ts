import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { GatewayService } from "../../gen/taskwire/v1/gateway_service_pb.ts";
import { QueueService } from "../../gen/taskwire/v1/queue_service_pb.ts";
import { TaskService } from "../../gen/taskwire/v1/task_service_pb.ts";
import { WorkerService } from "../../gen/taskwire/v1/worker_service_pb.ts";
import { readCredential } from "./credential.ts";

/** Signs every call with the caller's credential, when it gave one. */
const withCredential: Interceptor = (next) => (request) => {
  const credential = readCredential();
  if (credential) request.header.set("authorization", `Bearer ${credential}`);
  return next(request);
};

/**
 * Connect in binary Protobuf to the gateway that served this page: the page's
 * own folder (its origin, unless a proxy mounts the gateway below a path).
 */
const transport = createConnectTransport({
  baseUrl: new URL(".", location.href).href.replace(/\/$/, ""),
  useBinaryFormat: true,
  interceptors: [withCredential],
});

/** The gateway's TaskService: submit, read, watch, cancel and list tasks. */
export const taskService = createClient(TaskService, transport);
/** The gateway's QueueService: queue states, pause, resume, purge, dead letters. */
export const queueService = createClient(QueueService, transport);
/** The gateway's WorkerService: the live worker instances. */
export const workerService = createClient(WorkerService, transport);
/** The gateway's GatewayService: who the caller is, and the task types with their schemas. */
export const gatewayService = createClient(GatewayService, transport);

/** Fires "unauthenticated" when the gateway refuses the caller's credential, so that the console asks for another. */
export const authEvents = new EventTarget();

/** Whether a call failed for want of a valid credential; if so, tells {@link authEvents}. */
export function refusedCredential(error: unknown): boolean {
  const refused = ConnectError.from(error).code === Code.Unauthenticated;
  if (refused) authEvents.dispatchEvent(new Event("unauthenticated"));
  return refused;
}

/** A call's error for a person to read: its code in words, then the gateway's message. */
export function errorMessage(error: unknown): string {
  const problem = ConnectError.from(error);
  const code = Code[problem.code]?.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase() ?? "error";
  return `${code}: ${problem.rawMessage}`;
}
