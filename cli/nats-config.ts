import { resolve } from "node:path";
import { type NatsConnectionSettings, type NatsSecret, redactUrl } from "../sdk/nats/index.ts";

/** The `nats:` block of taskwire.yaml, resolved. */
export interface NatsConfig {
  /** The first server's URL (what `taskwire dev` starts a nats-server on). @default "nats://127.0.0.1:4222", or TASKWIRE_NATS */
  readonly url: string;
  /** Where `taskwire dev` keeps its nats-server's data. @default ".taskwire/nats" */
  readonly dataDir: string;
  /** How every process connects: secrets as { env } or { file } references, paths absolute. */
  readonly connection: NatsConnectionSettings;
  /** Copies a cluster keeps of every stream and bucket Taskwire creates (1, 3 or 5); unset: each type's, else 1. */
  readonly replicas: number | undefined;
}

const keys = [
  "url",
  "servers",
  "dataDir",
  "name",
  "inboxPrefix",
  "user",
  "password",
  "token",
  "nkeySeed",
  "creds",
  "tls",
  "jetstream",
  "replicas",
  "pingIntervalMs",
];
const tlsKeys = ["ca", "cert", "key", "serverName", "handshakeFirst"];
const jetstreamKeys = ["domain", "apiPrefix"];

/**
 * Reads the `nats:` block of taskwire.yaml `file`. Secrets (password, token,
 * nkeySeed) only as `{ env: NAME }` or `{ file: PATH }`; paths are relative to
 * the file. TASKWIRE_NATS, when set, replaces the servers. Every error names
 * the file and the key, never a secret.
 */
export function parseNatsConfig(value: unknown, file: string, env: NodeJS.ProcessEnv = process.env): NatsConfig {
  const root = resolve(file, "..");
  const fail = (key: string, problem: string): never => {
    throw new Error(`${file}: ${key} ${problem}`);
  };
  const mapping = (v: unknown, key: string, allowed: string[]): Record<string, unknown> => {
    if (v === undefined || v === null) return {};
    if (typeof v !== "object" || Array.isArray(v)) return fail(key, "must be a mapping");
    for (const k of Object.keys(v)) {
      if (!allowed.includes(k)) fail(`${key}.${k}`, `is not a setting (known: ${allowed.join(", ")})`);
    }
    return v as Record<string, unknown>;
  };
  const str = (v: unknown, key: string): string | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string" || v === "") return fail(key, "must be a non-empty string");
    return v;
  };
  const path = (v: unknown, key: string) => {
    const s = str(v, key);
    return s === undefined ? undefined : resolve(root, s);
  };
  const secret = (v: unknown, key: string): NatsSecret | undefined => {
    if (v === undefined || v === null) return undefined;
    const how = `give it as { env: NAME } (an environment variable) or { file: PATH } (relative to ${file})`;
    // The value is not repeated: it may be the secret.
    if (typeof v !== "object" || Array.isArray(v))
      return fail(key, `is a secret: it cannot be written in the file; ${how}`);
    const ref = v as Record<string, unknown>;
    const names = Object.keys(ref);
    if (names.length !== 1 || !(names[0] === "env" || names[0] === "file"))
      return fail(key, `must be { env: NAME } or { file: PATH } (relative to ${file})`);
    if (names[0] === "env") {
      const name = str(ref.env, `${key}.env`) as string;
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) fail(`${key}.env`, "must be an environment variable name");
      return { env: name };
    }
    return { file: path(ref.file, `${key}.file`) as string };
  };

  const nats = mapping(value, "nats", keys);
  if (nats.url !== undefined && nats.servers !== undefined) fail("nats", "has both url and servers: choose one");
  let servers: string[];
  if (nats.servers !== undefined) {
    if (!Array.isArray(nats.servers) || nats.servers.length === 0)
      fail("nats.servers", "must be a non-empty list of URLs");
    servers = (nats.servers as unknown[]).map((s, i) => str(s, `nats.servers[${i}]`) as string);
  } else servers = [str(nats.url, "nats.url") ?? "nats://127.0.0.1:4222"];
  for (const [i, server] of servers.entries()) {
    // Credentials belong in user/password or token, where they can be references.
    if (redactUrl(server) !== server)
      fail(nats.servers ? `nats.servers[${i}]` : "nats.url", "carries credentials: set user/password or token instead");
  }
  if (env.TASKWIRE_NATS) servers = env.TASKWIRE_NATS.split(",").map((s) => s.trim());

  const tls = nats.tls === undefined ? undefined : mapping(nats.tls, "nats.tls", tlsKeys);
  if (tls && (tls.cert === undefined) !== (tls.key === undefined)) fail("nats.tls", "needs cert and key together");
  if (tls?.handshakeFirst !== undefined && typeof tls.handshakeFirst !== "boolean")
    fail("nats.tls.handshakeFirst", "must be true or false");
  const jetstream = nats.jetstream === undefined ? undefined : mapping(nats.jetstream, "nats.jetstream", jetstreamKeys);
  if (jetstream?.domain !== undefined && jetstream.apiPrefix !== undefined)
    fail("nats.jetstream", "has both domain and apiPrefix: choose one");
  const user = str(nats.user, "nats.user");
  const password = secret(nats.password, "nats.password");
  if ((user === undefined) !== (password === undefined)) fail("nats", "needs user and password together");

  const pingIntervalMs = nats.pingIntervalMs as number | undefined;
  if (pingIntervalMs !== undefined && !(Number.isInteger(pingIntervalMs) && pingIntervalMs >= 100))
    fail(
      "nats.pingIntervalMs",
      `must be a whole number of milliseconds, 100 or more, got ${JSON.stringify(pingIntervalMs)}`,
    );
  const optional = <T>(key: string, v: T | undefined) => (v === undefined ? {} : { [key]: v });
  const connection: NatsConnectionSettings = {
    servers,
    ...optional("name", str(nats.name, "nats.name")),
    ...optional("inboxPrefix", str(nats.inboxPrefix, "nats.inboxPrefix")),
    ...optional("pingIntervalMs", pingIntervalMs),
    ...optional("user", user),
    ...optional("password", password),
    ...optional("token", secret(nats.token, "nats.token")),
    ...optional("nkeySeed", secret(nats.nkeySeed, "nats.nkeySeed")),
    ...optional("creds", path(nats.creds, "nats.creds")),
    ...optional(
      "tls",
      tls && {
        ...optional("ca", path(tls.ca, "nats.tls.ca")),
        ...optional("cert", path(tls.cert, "nats.tls.cert")),
        ...optional("key", path(tls.key, "nats.tls.key")),
        ...optional("serverName", str(tls.serverName, "nats.tls.serverName")),
        ...optional("handshakeFirst", tls.handshakeFirst),
      },
    ),
    ...optional(
      "jetstream",
      jetstream && {
        ...optional("domain", str(jetstream.domain, "nats.jetstream.domain")),
        ...optional("apiPrefix", str(jetstream.apiPrefix, "nats.jetstream.apiPrefix")),
      },
    ),
  };
  if (nats.replicas !== undefined && ![1, 3, 5].includes(nats.replicas as number))
    fail("nats.replicas", `must be 1, 3 or 5, got ${JSON.stringify(nats.replicas)}`);
  return {
    url: servers[0] as string,
    replicas: nats.replicas as number | undefined,
    dataDir: resolve(root, str(nats.dataDir, "nats.dataDir") ?? ".taskwire/nats"),
    connection,
  };
}
