import * as http2 from "node:http2";
import * as net from "node:net";
import type * as tls from "node:tls";

/** TLS settings of a connection to an `https://` gateway (Node's `tls.connect` options). */
export type GatewayTlsOptions = Pick<
  tls.ConnectionOptions,
  "ca" | "cert" | "key" | "passphrase" | "pfx" | "servername" | "rejectUnauthorized" | "minVersion"
>;

/** How the SDK keeps its HTTP/2 session to a gateway healthy. */
export interface GatewaySessionOptions {
  /** TLS settings for an `https://` gateway: a CA to trust, a client certificate (mTLS). */
  tls?: GatewayTlsOptions;
  /**
   * While calls are in flight, a PING every this many ms: it keeps the connection
   * alive through proxies and NATs, and finds a gateway that stopped answering. @default 30000
   */
  pingIntervalMs?: number;
  /** A PING unanswered this long means the gateway is gone: the session closes, its calls fail UNAVAILABLE. @default 15000 */
  pingTimeoutMs?: number;
  /** A session without calls for this long is closed; the next call opens another. @default 300000 */
  idleTimeoutMs?: number;
}

/**
 * Flow-control windows of the session: its streams' (each WaitTasks stream may
 * carry a thousand answers) and the session's own, which every stream shares.
 * Node's default, 64 KiB for both, held submitBatch through a gateway a fifth
 * below its rate with WaitTasks streams on one session.
 */
const streamWindowBytes = 4 * 1024 * 1024;
const sessionWindowBytes = 64 * 1024 * 1024;

/**
 * One HTTP/2 session to the gateway and the calls in flight on it. It holds the
 * process open only while it has calls; it pings the gateway while it has calls,
 * and is destroyed when a ping goes unanswered; it closes once idle.
 */
export class GatewaySession {
  readonly session: http2.ClientHttp2Session;
  private calls = 0;
  private readonly pingTimer: NodeJS.Timeout;
  private idleTimer: NodeJS.Timeout | undefined;
  private pingDeadline: NodeJS.Timeout | undefined;
  private readonly options: Required<Omit<GatewaySessionOptions, "tls">>;

  constructor(origin: URL, options: GatewaySessionOptions) {
    this.options = {
      pingIntervalMs: options.pingIntervalMs ?? 30_000,
      pingTimeoutMs: options.pingTimeoutMs ?? 15_000,
      idleTimeoutMs: options.idleTimeoutMs ?? 300_000,
    };
    // Without Nagle's algorithm: a call's HEADERS and DATA frames are separate writes,
    // and the second would wait for the first one's ACK. (Node's TLS sockets set it already.)
    this.session = http2.connect(origin, {
      ...options.tls,
      settings: { initialWindowSize: streamWindowBytes },
      createConnection:
        origin.protocol === "http:"
          ? () =>
              net.connect({
                host: origin.hostname.replace(/^\[|\]$/g, ""),
                port: Number(origin.port || 80),
                noDelay: true,
              })
          : undefined,
    });
    this.session.once("connect", () => this.session.setLocalWindowSize(sessionWindowBytes));
    this.session.unref();
    this.pingTimer = setInterval(() => this.ping(), this.options.pingIntervalMs).unref();
    this.session.once("close", () => {
      clearInterval(this.pingTimer);
      clearTimeout(this.idleTimer);
      clearTimeout(this.pingDeadline);
    });
    this.idle();
  }

  /** Whether new calls may go on this session. */
  get usable(): boolean {
    return !this.session.closed && !this.session.destroyed;
  }

  /** A call starts: the session holds the process open until its calls end. */
  begin(): void {
    if (this.calls++ === 0) {
      clearTimeout(this.idleTimer);
      this.session.ref();
    }
  }

  /** A call ended. */
  end(): void {
    if (--this.calls === 0 && !this.session.destroyed) {
      this.session.unref();
      this.idle();
    }
  }

  private idle(): void {
    this.idleTimer = setTimeout(() => {
      if (this.calls === 0) this.session.close();
    }, this.options.idleTimeoutMs).unref();
  }

  private ping(): void {
    if (this.calls === 0 || this.pingDeadline || !this.usable) return;
    const { pingTimeoutMs } = this.options;
    this.pingDeadline = setTimeout(() => {
      // Its calls fail with this error on their streams (see the transport's Exchange).
      const gone = Object.assign(new Error(`the gateway did not answer a ping within ${pingTimeoutMs} ms`), {
        code: "ETIMEDOUT",
      });
      this.session.destroy(gone);
    }, pingTimeoutMs).unref();
    const sent = this.session.ping((error) => {
      if (error) return; // the session is closing: its own events tell the calls
      clearTimeout(this.pingDeadline);
      this.pingDeadline = undefined;
    });
    if (!sent) {
      clearTimeout(this.pingDeadline);
      this.pingDeadline = undefined;
    }
  }
}
