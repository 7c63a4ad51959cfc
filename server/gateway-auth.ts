import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type * as tls from "node:tls";
import { Code, ConnectError, createContextKey, type HandlerContext } from "@connectrpc/connect";
import { createLocalJWKSet, createRemoteJWKSet, type JWTVerifyGetKey, errors as joseErrors, jwtVerify } from "jose";
import {
  type Action,
  allows,
  grantsAnything,
  needed,
  type Permission,
  type PermissionSet,
  type Principal,
  parsePermissions,
} from "./permissions.ts";

/** An API key: its hash (never the key itself), its permissions and an optional end. */
export interface ApiKeyOptions {
  /** The key's name, recorded as the caller of what it does, e.g. "billing". */
  name: string;
  /** The SHA-256 of the key, 64 hex digits, as `taskwire key create` prints it. */
  sha256: string;
  /** What it may do, e.g. `["submit:billing", "read:billing"]`. */
  permissions: Permission[];
  /** After this instant the key is refused. */
  expires?: Date;
}

/** A client certificate's permissions. */
export interface ClientCertOptions {
  /** The verified certificate's subject CN, recorded as the caller, e.g. "ops". */
  commonName: string;
  /** What it may do. */
  permissions: Permission[];
}

/** JWT bearer tokens, checked against the issuer's public keys. */
export interface JwtOptions {
  /** Where the issuer's keys are: an `https://` (or `http://`) URL of a JWKS, or a JWKS file's path. */
  jwks: string;
  /** The `iss` every token must carry. */
  issuer: string;
  /** An `aud` every token must carry. */
  audience: string;
  /** The claim holding the token's permissions, a list of strings. @default "permissions" */
  permissionsClaim?: string;
}

/**
 * How the gateway authenticates callers. Credentials travel as
 * `authorization: Bearer <API key or JWT>`; a call without one has the
 * `anonymous` permissions, and none given, is refused UNAUTHENTICATED.
 */
export interface GatewayAuthOptions {
  /** The API keys accepted, by their hashes. */
  apiKeys?: ApiKeyOptions[];
  /** JWTs accepted, from one issuer. */
  jwt?: JwtOptions;
  /**
   * Client certificates (mTLS) accepted, by their subject's common name: the
   * gateway must serve TLS with a `clientCa` that verifies them. A call with a
   * bearer token is authenticated by the token.
   */
  clientCerts?: ClientCertOptions[];
  /** What a caller without credentials may do. @default [] (nothing: credentials required) */
  anonymous?: Permission[];
}

/** One structured log line: a refused call, or a queue operation. */
export interface AuditEntry {
  /** When, as an ISO 8601 instant. */
  readonly time: string;
  /** The caller's name, or "anonymous". */
  readonly principal: string;
  /** How the caller was authenticated. */
  readonly via: Principal["via"];
  /** The call's path, e.g. "/taskwire.v1.QueueService/PurgeQueue". */
  readonly method: string;
  /** The action the call needed, or the queue operation's ("operate"). */
  readonly action?: Action;
  /** The worker types it acted on. */
  readonly workerTypes?: readonly string[];
  /** Refused before it ran, or a queue operation that succeeded or failed. */
  readonly outcome: "refused" | "ok" | "failed";
  /** The refusal's or failure's code, e.g. "PermissionDenied". */
  readonly code?: string;
  /** Its message: what was missing, never a credential. */
  readonly reason?: string;
}

/** Writes audit entries, one JSON object per line. @default to stderr */
export type AuditLog = (entry: AuditEntry) => void;

export const stderrAuditLog: AuditLog = (entry) => {
  process.stderr.write(`${JSON.stringify(entry)}\n`);
};

const everything = parsePermissions(["admin"], "open");

/** The caller of a gateway without `auth`: anyone, allowed everything (for a developer's loopback gateway). */
export const openPrincipal: Principal = { name: "anonymous", via: "open", permissions: everything };

/** The subject CN of the call's verified client certificate, if any (mTLS). */
export const peerKey = createContextKey<string | undefined>(undefined, { description: "taskwire peer certificate" });

/**
 * The common name of the client certificate of the request's connection, if it
 * has one that the gateway's `clientCa` verified.
 */
export function verifiedPeerOf(request: { readonly socket: unknown }): string | undefined {
  const socket = request.socket as Partial<tls.TLSSocket> | undefined;
  if (!socket?.authorized || typeof socket.getPeerCertificate !== "function") return undefined;
  const commonName = socket.getPeerCertificate().subject?.CN;
  return typeof commonName === "string" && commonName !== "" ? commonName : undefined;
}

/** The call's principal, set by the authentication interceptor. */
export const principalKey = createContextKey<Principal>(openPrincipal, { description: "taskwire principal" });

/** The principal making the call: the open one where the gateway has no `auth`. */
export function principalOf(context: Pick<HandlerContext, "values">): Principal {
  return context.values.get(principalKey);
}

/**
 * What a task submitted in this call records as its submitter: the caller's
 * name, or nothing on a gateway without authentication (a client's own value
 * is never kept).
 */
export function submitterOf(context: Pick<HandlerContext, "values">): string {
  const principal = principalOf(context);
  return principal.via === "open" ? "" : principal.name;
}

/** The SHA-256, in hex, that configuration stores for an API key. */
export function apiKeyHash(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

interface JwtCheck {
  readonly keys: JWTVerifyGetKey;
  readonly options: JwtOptions;
  readonly claim: string;
}

/**
 * Finds who a bearer token is. An unknown, expired or unverifiable credential
 * is UNAUTHENTICATED naming why; the token itself is never part of a message.
 */
export class Authenticator {
  readonly #keys = new Map<string, { name: string; permissions: PermissionSet; expires: Date | undefined }>();
  readonly #jwt: JwtCheck | undefined;
  readonly #certs = new Map<string, PermissionSet>();
  readonly #anonymous: Principal | undefined;
  readonly #accepted: string;
  readonly #acceptsCerts: boolean;

  constructor(options: GatewayAuthOptions) {
    (options.apiKeys ?? []).forEach((key, i) => {
      if (!/^[0-9a-f]{64}$/.test(key.sha256)) {
        throw new Error(`auth.apiKeys[${i}].sha256 must be 64 lower-case hex digits (see taskwire key create)`);
      }
      if (this.#keys.has(key.sha256)) throw new Error(`auth.apiKeys[${i}] has the same key as another`);
      this.#keys.set(key.sha256, {
        name: key.name,
        permissions: parsePermissions(key.permissions, `auth.apiKeys[${i}].permissions`),
        expires: key.expires,
      });
    });
    if (options.jwt) {
      const { jwks } = options.jwt;
      const keys = /^https?:\/\//.test(jwks)
        ? createRemoteJWKSet(new URL(jwks))
        : createLocalJWKSet(JSON.parse(readFileSync(jwks, "utf8")));
      this.#jwt = { keys, options: options.jwt, claim: options.jwt.permissionsClaim ?? "permissions" };
    }
    (options.clientCerts ?? []).forEach((cert, i) => {
      if (this.#certs.has(cert.commonName)) throw new Error(`auth.clientCerts[${i}] names "${cert.commonName}" twice`);
      this.#certs.set(cert.commonName, parsePermissions(cert.permissions, `auth.clientCerts[${i}].permissions`));
    });
    const anonymous = parsePermissions(options.anonymous ?? [], "auth.anonymous");
    if (grantsAnything(anonymous)) this.#anonymous = { name: "anonymous", via: "anonymous", permissions: anonymous };
    this.#accepted = [
      ...(this.#keys.size > 0 ? ["an API key"] : []),
      ...(this.#jwt ? [`a JWT from ${this.#jwt.options.issuer}`] : []),
    ].join(" or ");
    this.#acceptsCerts = this.#certs.size > 0;
  }

  /**
   * The principal of a call with these request headers, over a connection whose
   * verified client certificate has subject CN `peer` (mTLS), if any.
   */
  async authenticate(headers: Headers, peer?: string): Promise<Principal> {
    const authorization = headers.get("authorization");
    if (authorization === null) {
      if (peer !== undefined) {
        const permissions = this.#certs.get(peer);
        if (permissions) return { name: peer, via: "client-cert", permissions };
        if (this.#acceptsCerts) {
          throw new ConnectError(`client certificate "${peer}" is not one this gateway accepts`, Code.Unauthenticated);
        }
      }
      if (this.#anonymous) return this.#anonymous;
      const accepted = this.#accepted || "credential";
      throw new ConnectError(
        `this gateway requires credentials: send "authorization: Bearer <${accepted}>"${this.#acceptsCerts ? " or a client certificate" : ""}`,
        Code.Unauthenticated,
      );
    }
    const match = /^Bearer +(\S+) *$/i.exec(authorization);
    if (!match) {
      throw new ConnectError(
        `the authorization header must be "Bearer <${this.#accepted || "credential"}>"`,
        Code.Unauthenticated,
      );
    }
    const token = match[1] as string;
    const key = this.#keys.get(apiKeyHash(token));
    if (key) {
      if (key.expires && key.expires.getTime() <= Date.now()) {
        throw new ConnectError(`API key "${key.name}" expired at ${key.expires.toISOString()}`, Code.Unauthenticated);
      }
      return { name: key.name, via: "api-key", permissions: key.permissions };
    }
    if (this.#jwt && token.split(".").length === 3) return this.#verifyJwt(token, this.#jwt);
    throw new ConnectError(
      this.#jwt ? "the bearer token is neither a known API key nor a JWT" : "the bearer token is not a known API key",
      Code.Unauthenticated,
    );
  }

  async #verifyJwt(token: string, jwt: JwtCheck): Promise<Principal> {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, jwt.keys, {
        issuer: jwt.options.issuer,
        audience: jwt.options.audience,
        requiredClaims: ["exp", "sub"],
      }));
    } catch (error) {
      throw new ConnectError(`the JWT is not accepted: ${jwtProblem(error)}`, Code.Unauthenticated);
    }
    const claim = payload[jwt.claim] ?? [];
    let permissions: PermissionSet;
    try {
      if (!Array.isArray(claim)) throw new Error(`claim "${jwt.claim}" is not a list`);
      permissions = parsePermissions(claim, `claim "${jwt.claim}"`);
    } catch (error) {
      throw new ConnectError(`the JWT is not accepted: ${(error as Error).message}`, Code.Unauthenticated);
    }
    return { name: String(payload.sub), via: "jwt", permissions };
  }
}

/** Why jose refused a token, in words that name the claim and never the token. */
function jwtProblem(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return "it has expired (exp)";
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    return `claim "${error.claim}" ${error.reason === "missing" ? "is missing" : "does not match"}`;
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return "its signature does not verify";
  if (error instanceof joseErrors.JWKSNoMatchingKey) return "no key of the JWKS matches it";
  if (error instanceof joseErrors.JOSEError) return `${error.code}: ${error.message}`;
  return (error as Error).message;
}

/** Refuses a call `principal` may not make: PERMISSION_DENIED naming the permission it needs. */
export function requirePermission(principal: Principal, action: Action, workerTypes: readonly string[]): void {
  for (const type of workerTypes) {
    if (!allows(principal.permissions, action, type)) {
      throw new ConnectError(
        `${principal.name} may not do this: it needs permission "${needed(action, type)}"`,
        Code.PermissionDenied,
      );
    }
  }
}
