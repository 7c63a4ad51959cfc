import { Code, ConnectError } from "@connectrpc/connect";

/**
 * What one client can hold of a gateway. Past a limit the gateway refuses
 * with a status every protocol maps to a code: 503 with `retry-after` is
 * UNAVAILABLE, a reset stream or closed connection too; a JSON body nested
 * too deep is RESOURCE_EXHAUSTED.
 */
export interface GatewayLimits {
  /** A request's headers must all arrive within this long of its first byte. @default 10000 */
  headersTimeoutMs?: number;
  /** A whole request, headers and body, must arrive within this long. Responses (streams) may last longer. @default 60000 */
  requestTimeoutMs?: number;
  /** A connection without a request in flight is closed after this long. @default 65000 */
  idleTimeoutMs?: number;
  /** Open connections, HTTP/1.1 and HTTP/2 together; more are refused. @default 10000 */
  maxConnections?: number;
  /** Concurrent streams of one HTTP/2 connection (its SETTINGS_MAX_CONCURRENT_STREAMS). @default 100 */
  maxStreamsPerConnection?: number;
  /** Requests in flight on all connections together (unary calls and open streams). @default 10000 */
  maxStreams?: number;
  /** How deep a JSON request may nest objects and arrays. @default 64 */
  maxJsonDepth?: number;
}

/** {@link GatewayLimits} with every default applied. */
export type ResolvedGatewayLimits = Required<GatewayLimits>;

const defaults: ResolvedGatewayLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  idleTimeoutMs: 65_000,
  maxConnections: 10_000,
  maxStreamsPerConnection: 100,
  maxStreams: 10_000,
  maxJsonDepth: 64,
};

/** Applies the defaults; a limit that is not a positive integer is a RangeError naming it. */
export function resolveGatewayLimits(limits: GatewayLimits = {}): ResolvedGatewayLimits {
  const resolved = { ...defaults };
  for (const [name, value] of Object.entries(limits) as [keyof GatewayLimits, unknown][]) {
    if (!(name in defaults)) {
      throw new RangeError(`limits.${name} is not a gateway limit (known: ${Object.keys(defaults).join(", ")})`);
    }
    if (value === undefined) continue;
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 2 ** 31 - 1) {
      throw new RangeError(`limits.${name} must be an integer from 1 to 2147483647, got ${String(value)}`);
    }
    resolved[name] = value;
  }
  if (resolved.headersTimeoutMs > resolved.requestTimeoutMs) {
    throw new RangeError(
      `limits.headersTimeoutMs (${resolved.headersTimeoutMs}) must not exceed limits.requestTimeoutMs (${resolved.requestTimeoutMs})`,
    );
  }
  return resolved;
}

/**
 * Refuses JSON text that nests objects and arrays deeper than `maxDepth`, before
 * anything parses it: one pass over the characters, skipping strings.
 */
export function checkJsonDepth(text: string, maxDepth: number): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // a backslash escapes the next character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) {
        throw new ConnectError(
          `the JSON request nests deeper than ${maxDepth} levels (the gateway's limits.maxJsonDepth)`,
          Code.ResourceExhausted,
        );
      }
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
}

/**
 * Whether `authority` (a Host header or an HTTP/2 `:authority`) names one of
 * `hosts`, whatever its port. Names compare case-insensitively; IPv6 addresses
 * are written in brackets, e.g. "[::1]".
 */
export function hostAllowed(authority: string | undefined, hosts: ReadonlySet<string>): boolean {
  if (authority === undefined) return false;
  const name = authority.startsWith("[")
    ? authority.slice(0, authority.indexOf("]") + 1)
    : authority.replace(/:\d*$/, "");
  return hosts.has(name.toLowerCase());
}

/** The names a loopback gateway answers to, as browsers and clients write them. */
export const loopbackHosts: readonly string[] = ["localhost", "127.0.0.1", "[::1]"];
