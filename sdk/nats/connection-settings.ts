import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { JetStreamOptions } from "@nats-io/jetstream";
import {
  type Authenticator,
  type ConnectionOptions,
  credsAuthenticator,
  type NatsConnection,
  nkeyAuthenticator,
  tokenAuthenticator,
  usernamePasswordAuthenticator,
} from "@nats-io/transport-node";

/**
 * Where a secret is read from when the connection opens: an environment
 * variable or a file (its content, trimmed). A plain string is the secret
 * itself: accepted in code, but it cannot be handed to child processes.
 */
export type NatsSecret =
  | string
  | {
      /** The environment variable holding the secret. */
      readonly env: string;
    }
  | {
      /** The file holding the secret (its content, trimmed). */
      readonly file: string;
    };

/** How a process connects to NATS: the same settings for clients, workers, the gateway and the CLI. */
export interface NatsConnectionSettings {
  /**
   * Server URLs. Credentials in a URL (`nats://user:pass@host`, `nats://token@host`)
   * are taken out of it and used as user/password or token.
   * @default "nats://127.0.0.1:4222"
   */
  readonly servers?: string | readonly string[];
  /** Subject prefix of the connection's reply inboxes, for accounts allowed to subscribe only below it. @default "_INBOX" */
  readonly inboxPrefix?: string;
  /** The connection's name, shown by the server's monitoring. */
  readonly name?: string;
  /** User name, with {@link password}. */
  readonly user?: string;
  /** The password of {@link user}. */
  readonly password?: NatsSecret;
  /** A token (the server's `authorization { token }`). */
  readonly token?: NatsSecret;
  /** An nkey seed (`SU…`). */
  readonly nkeySeed?: NatsSecret;
  /** Path of a `.creds` file (user JWT and nkey seed), as `nsc` writes them. */
  readonly creds?: string;
  /** TLS: paths of PEM files. Setting `tls` (even `{}`) requires TLS. */
  readonly tls?: {
    /** CA certificates the server's certificate is checked against. @default the system's */
    readonly ca?: string;
    /** Client certificate and its key, for servers that verify clients. */
    readonly cert?: string;
    /** The client certificate's private key. */
    readonly key?: string;
    /** The name the server's certificate must carry. @default the URL's host */
    readonly serverName?: string;
    /** TLS before the NATS INFO (the server's `handshake_first`). @default false */
    readonly handshakeFirst?: boolean;
  };
  /**
   * How often the client pings a quiet server; two unanswered pings and it
   * reconnects to another. A process connected to a server cut off by a
   * partition notices within two to three of these (nats.js alone: 2 minutes).
   * @default 10000
   */
  readonly pingIntervalMs?: number;
  /** The JetStream domain or API prefix every JetStream and KV call uses. */
  readonly jetstream?: {
    /** The JetStream domain (`$JS.<domain>.API`). */
    readonly domain?: string;
    /** The JetStream API prefix, e.g. an import's `$JS.hub.API`. */
    readonly apiPrefix?: string;
  };
}

const defaultServer = "nats://127.0.0.1:4222";
const defaultPingIntervalMs = 10_000;

/** True for an open connection, false for a URL or settings. */
export function isNatsConnection(value: unknown): value is NatsConnection {
  return typeof value === "object" && value !== null && typeof (value as NatsConnection).publish === "function";
}

/** A URL without the credentials it may carry, for messages and logs. */
export function redactUrl(url: string): string {
  // Up to the last "@": a password may hold "@" or "/" unencoded, and NATS URLs have no path.
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)?.*@/is, (_, scheme: string | undefined) => `${scheme ?? ""}`);
}

/** The servers of `settings` as a list, credentials removed: what messages may show. */
export function describeServers(settings: string | NatsConnectionSettings): string {
  const servers = typeof settings === "string" ? [settings] : serverList(settings);
  return servers.map(redactUrl).join(", ");
}

function serverList(settings: NatsConnectionSettings): string[] {
  const { servers } = settings;
  if (servers === undefined) return [defaultServer];
  const list = typeof servers === "string" ? [servers] : [...servers];
  if (list.length === 0) throw new Error("NATS settings: servers is empty");
  return list;
}

/** Reads a secret; errors name `key` and the variable or path, never the value. */
export async function resolveSecret(secret: NatsSecret, key: string): Promise<string> {
  if (typeof secret === "string") return secret;
  if ("env" in secret) {
    const value = process.env[secret.env];
    if (value === undefined || value === "")
      throw new Error(`NATS ${key}: environment variable ${secret.env} is not set`);
    return value;
  }
  if ("file" in secret) {
    let text: string;
    try {
      text = await readFile(secret.file, "utf8");
    } catch (error) {
      throw new Error(`NATS ${key}: cannot read ${secret.file}: ${(error as NodeJS.ErrnoException).code ?? "error"}`);
    }
    const value = text.trim();
    if (value === "") throw new Error(`NATS ${key}: ${secret.file} is empty`);
    return value;
  }
  throw new Error(`NATS ${key}: must be { env: NAME } or { file: PATH }`);
}

/**
 * Throws unless every secret of `settings` is a reference ({ env } or { file }),
 * so that the settings can be handed to another process without the secret.
 */
export function assertSecretReferences(settings: NatsConnectionSettings, context: string): void {
  for (const key of ["password", "token", "nkeySeed"] as const) {
    if (typeof settings[key] === "string")
      throw new Error(`${context}: NATS ${key} must be given as { env: NAME } or { file: PATH } to pass it on`);
  }
}

/** Settings as a child process reads them back: relative paths made absolute. */
export function absolutePaths(settings: NatsConnectionSettings, base = process.cwd()): NatsConnectionSettings {
  const abs = (path: string | undefined) => (path === undefined ? undefined : resolve(base, path));
  const secret = (s: NatsSecret | undefined) =>
    s !== undefined && typeof s === "object" && "file" in s ? { file: resolve(base, s.file) } : s;
  return {
    ...settings,
    ...(settings.password !== undefined ? { password: secret(settings.password) } : {}),
    ...(settings.token !== undefined ? { token: secret(settings.token) } : {}),
    ...(settings.nkeySeed !== undefined ? { nkeySeed: secret(settings.nkeySeed) } : {}),
    ...(settings.creds !== undefined ? { creds: abs(settings.creds) } : {}),
    ...(settings.tls !== undefined
      ? {
          tls: {
            ...settings.tls,
            ...(settings.tls.ca !== undefined ? { ca: abs(settings.tls.ca) } : {}),
            ...(settings.tls.cert !== undefined ? { cert: abs(settings.tls.cert) } : {}),
            ...(settings.tls.key !== undefined ? { key: abs(settings.tls.key) } : {}),
          },
        }
      : {}),
  };
}

/**
 * nats.js connect options for `settings`: secrets read, credentials taken out
 * of the URLs. Errors name the setting, not the secret.
 */
export async function toConnectionOptions(
  settings: string | NatsConnectionSettings,
): Promise<{ options: ConnectionOptions; jetstream: JetStreamOptions }> {
  const s: NatsConnectionSettings = typeof settings === "string" ? { servers: settings } : settings;
  let fromUrl: { user?: string; password?: string; token?: string } | undefined;
  const servers = serverList(s).map((server) => {
    const match = /^([a-z][a-z0-9+.-]*:\/\/)?(.*)@([^@]*)$/is.exec(server);
    if (!match) return server;
    const [, scheme = "", userinfo = "", rest = ""] = match;
    const colon = userinfo.indexOf(":");
    const creds =
      colon < 0
        ? { token: decodeURIComponent(userinfo) }
        : {
            user: decodeURIComponent(userinfo.slice(0, colon)),
            password: decodeURIComponent(userinfo.slice(colon + 1)),
          };
    if (fromUrl && JSON.stringify(fromUrl) !== JSON.stringify(creds))
      throw new Error(`NATS servers: ${describeServers(s)} carry different credentials`);
    fromUrl = creds;
    return `${scheme}${rest}`;
  });
  if (fromUrl && (s.user !== undefined || s.password !== undefined || s.token !== undefined))
    throw new Error(
      `NATS servers: ${describeServers(s)} carries credentials and user/password or token are set too: give them once`,
    );
  if (s.password !== undefined && s.user === undefined) throw new Error("NATS password: set user too");
  if (s.user !== undefined && s.password === undefined) throw new Error(`NATS user ${s.user}: set password too`);
  if (s.jetstream?.domain !== undefined && s.jetstream.apiPrefix !== undefined)
    throw new Error("NATS jetstream: set domain or apiPrefix, not both");
  const pingInterval = s.pingIntervalMs ?? defaultPingIntervalMs;
  if (!Number.isInteger(pingInterval) || pingInterval < 100)
    throw new Error(`NATS pingIntervalMs: must be a whole number of milliseconds, 100 or more, got ${pingInterval}`);

  const authenticators: Authenticator[] = [];
  const user = s.user ?? fromUrl?.user;
  if (user !== undefined) {
    const password = fromUrl?.password ?? (await resolveSecret(s.password as NatsSecret, "password"));
    authenticators.push(usernamePasswordAuthenticator(user, rereadFile(s.password, password)));
  }
  const token = fromUrl?.token ?? (s.token === undefined ? undefined : await resolveSecret(s.token, "token"));
  if (token !== undefined) authenticators.push(tokenAuthenticator(rereadFile(s.token, token)));
  if (s.nkeySeed !== undefined) {
    const seed = await resolveSecret(s.nkeySeed, "nkeySeed");
    if (!/^S[A-Z2-7]{57}$/.test(seed))
      throw new Error("NATS nkeySeed: not an nkey seed (S followed by 57 base32 characters)");
    const current = rereadFile(s.nkeySeed, seed);
    authenticators.push(nkeyAuthenticator(() => new TextEncoder().encode(current())));
  }
  if (s.creds !== undefined) {
    let creds: Buffer;
    try {
      creds = await readFile(s.creds);
    } catch (error) {
      throw new Error(`NATS creds: cannot read ${s.creds}: ${(error as NodeJS.ErrnoException).code ?? "error"}`);
    }
    const current = rereadFile({ file: s.creds }, creds.toString("utf8"), false);
    authenticators.push(credsAuthenticator(() => new TextEncoder().encode(current())));
  }

  let tls: ConnectionOptions["tls"];
  if (s.tls !== undefined) {
    if ((s.tls.cert === undefined) !== (s.tls.key === undefined)) throw new Error("NATS tls: cert and key go together");
    // nats.js reads caFile/certFile/keyFile itself, at each (re)connect; read here to name a missing one now.
    for (const key of ["ca", "cert", "key"] as const) {
      const path = s.tls[key];
      if (path !== undefined)
        await readFile(path).catch((error: NodeJS.ErrnoException) => {
          throw new Error(`NATS tls.${key}: cannot read ${path}: ${error.code ?? "error"}`);
        });
    }
    tls = {
      ...(s.tls.ca !== undefined ? { caFile: s.tls.ca } : {}),
      ...(s.tls.cert !== undefined ? { certFile: s.tls.cert, keyFile: s.tls.key } : {}),
      ...(s.tls.handshakeFirst ? { handshakeFirst: true } : {}),
      // Passed on to node:tls.connect.
      ...(s.tls.serverName !== undefined ? { servername: s.tls.serverName } : {}),
    } as ConnectionOptions["tls"];
  }

  return {
    options: {
      servers,
      ...(s.name !== undefined ? { name: s.name } : {}),
      ...(s.inboxPrefix !== undefined ? { inboxPrefix: s.inboxPrefix } : {}),
      pingInterval,
      maxPingOut: 2,
      ...(authenticators.length === 0
        ? {}
        : { authenticator: authenticators.length === 1 ? authenticators[0] : authenticators }),
      ...(tls !== undefined ? { tls } : {}),
    },
    jetstream: {
      ...(s.jetstream?.domain !== undefined ? { domain: s.jetstream.domain } : {}),
      ...(s.jetstream?.apiPrefix !== undefined ? { apiPrefix: s.jetstream.apiPrefix } : {}),
    },
  };
}

/**
 * The secret as of each (re)connect: a `{ file }` secret is read again, so that a
 * rotated file is used when the connection is next made; an unreadable or empty
 * file keeps the last value. Other secrets stay as first read.
 */
function rereadFile(secret: NatsSecret | undefined, first: string, trim = true): () => string {
  if (secret === undefined || typeof secret === "string" || !("file" in secret)) return () => first;
  let last = first;
  return () => {
    try {
      const text = readFileSync(secret.file, "utf8");
      const value = trim ? text.trim() : text;
      if (value.trim() !== "") last = value;
    } catch {
      // Keep the last value: the file may be mid-rotation.
    }
    return last;
  };
}

const jetStreamOptions = new WeakMap<NatsConnection, JetStreamOptions>();

/** Records the JetStream domain or API prefix every JetStream call on `nc` uses. */
export function setJetStreamOptions(nc: NatsConnection, options: JetStreamOptions): void {
  jetStreamOptions.set(nc, options);
}

/** The JetStream options (domain or API prefix) recorded for `nc`; `{}` if none. */
export function jetStreamOptionsOf(nc: NatsConnection): JetStreamOptions {
  return jetStreamOptions.get(nc) ?? {};
}

/** The JetStream API subject prefix on `nc`, as nats.js derives it: `$JS.API`, `$JS.<domain>.API` or the prefix set. */
export function jsApiPrefix(nc: NatsConnection): string {
  const { domain, apiPrefix } = jetStreamOptionsOf(nc);
  if (domain) return `$JS.${domain}.API`;
  return apiPrefix ? apiPrefix.replace(/\.$/, "") : "$JS.API";
}
