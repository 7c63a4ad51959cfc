import { resolve } from "node:path";
import type { ApiKeyOptions, GatewayAuthOptions } from "../server/index.ts";

/**
 * taskwire.yaml's `gateway.auth`, checked and resolved (a JWKS file's path made
 * absolute from `root`, the file's folder). Errors go through `fail(key, problem)`.
 *
 * ```yaml
 * auth:
 *   apiKeys:
 *     - name: billing
 *       sha256: 3f1c...   # taskwire key create prints it
 *       permissions: [submit:billing, read:billing]
 *       expires: 2027-06-01
 *   jwt: { jwks: https://id.example.com/.well-known/jwks.json, issuer: https://id.example.com, audience: taskwire }
 *   clientCerts: [ { commonName: ops, permissions: [admin] } ]   # with gateway.tls.clientCa
 *   anonymous: []
 * ```
 */
export function parseGatewayAuth(
  raw: unknown,
  root: string,
  fail: (key: string, problem: string) => never,
): GatewayAuthOptions | undefined {
  if (raw === undefined || raw === null) return undefined;
  const auth = mapping(raw, "gateway.auth", ["apiKeys", "jwt", "clientCerts", "anonymous"], fail);
  const strings = (value: unknown, key: string): string[] => {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value) || value.some((v) => typeof v !== "string"))
      return fail(key, "must be a list of strings");
    return value as string[];
  };
  const text = (value: unknown, key: string): string => {
    if (typeof value !== "string" || value === "") return fail(key, "must be a non-empty string");
    return value;
  };
  const apiKeysRaw = auth.apiKeys ?? [];
  if (!Array.isArray(apiKeysRaw)) return fail("gateway.auth.apiKeys", "must be a list");
  const apiKeys = apiKeysRaw.map((entry, i): ApiKeyOptions => {
    const key = `gateway.auth.apiKeys[${i}]`;
    const apiKey = mapping(entry, key, ["name", "sha256", "permissions", "expires"], fail);
    // Unquoted, a hash of digits alone (or digits and one "e") reads as a number.
    if (typeof apiKey.sha256 === "number") fail(`${key}.sha256`, "must be quoted, as a string");
    const sha256 = text(apiKey.sha256, `${key}.sha256`);
    if (!/^[0-9a-f]{64}$/.test(sha256)) {
      fail(
        `${key}.sha256`,
        'must be the key\'s SHA-256 in 64 hex digits, as "taskwire key create" prints it (never the key)',
      );
    }
    let expires: Date | undefined;
    if (apiKey.expires !== undefined) {
      // YAML reads an unquoted date as a Date; a quoted one is a string.
      expires = apiKey.expires instanceof Date ? apiKey.expires : new Date(text(apiKey.expires, `${key}.expires`));
      if (Number.isNaN(expires.getTime())) fail(`${key}.expires`, "must be a date, e.g. 2027-06-01");
    }
    return {
      name: text(apiKey.name, `${key}.name`),
      sha256,
      permissions: strings(apiKey.permissions, `${key}.permissions`),
      ...(expires ? { expires } : {}),
    };
  });
  let jwt: GatewayAuthOptions["jwt"];
  if (auth.jwt !== undefined) {
    const raw = mapping(auth.jwt, "gateway.auth.jwt", ["jwks", "issuer", "audience", "permissionsClaim"], fail);
    const jwks = text(raw.jwks, "gateway.auth.jwt.jwks");
    jwt = {
      jwks: /^https?:\/\//.test(jwks) ? jwks : resolve(root, jwks),
      issuer: text(raw.issuer, "gateway.auth.jwt.issuer"),
      audience: text(raw.audience, "gateway.auth.jwt.audience"),
      ...(raw.permissionsClaim !== undefined
        ? { permissionsClaim: text(raw.permissionsClaim, "gateway.auth.jwt.permissionsClaim") }
        : {}),
    };
  }
  const certsRaw = auth.clientCerts ?? [];
  if (!Array.isArray(certsRaw)) return fail("gateway.auth.clientCerts", "must be a list");
  const clientCerts = certsRaw.map((entry, i) => {
    const key = `gateway.auth.clientCerts[${i}]`;
    const cert = mapping(entry, key, ["commonName", "permissions"], fail);
    return {
      commonName: text(cert.commonName, `${key}.commonName`),
      permissions: strings(cert.permissions, `${key}.permissions`),
    };
  });
  return {
    apiKeys,
    ...(jwt ? { jwt } : {}),
    clientCerts,
    anonymous: strings(auth.anonymous, "gateway.auth.anonymous"),
  };
}

/** A YAML mapping with only `known` keys; anything else fails naming `key`. */
export function mapping(
  value: unknown,
  key: string,
  known: readonly string[],
  fail: (key: string, problem: string) => never,
): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return fail(key, "must be a mapping");
  for (const name of Object.keys(value)) {
    if (!known.includes(name)) fail(key, `has an unknown key "${name}" (known: ${known.join(", ")})`);
  }
  return value as Record<string, unknown>;
}
