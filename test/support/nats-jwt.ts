import { createHash } from "node:crypto";
import { nkeys } from "@nats-io/transport-node";

type KeyPair = ReturnType<typeof nkeys.createUser>;

/**
 * NATS JWTs for operator-mode tests, made with nkeys alone (what `nsc` writes):
 * an operator, an account with JetStream, and a user with its `.creds` text.
 */
export interface OperatorMode {
  /** nats-server configuration: operator, memory resolver with the account preloaded. */
  readonly config: string;
  /** A `.creds` file's text for a user of the account. */
  readonly creds: string;
  /** The user's seed, which only the creds file may show. */
  readonly userSeed: string;
  /** The `.creds` text of a user signed by another account, which the server does not know. */
  readonly strangerCreds: string;
}

const b64 = (data: string | Uint8Array) => Buffer.from(data).toString("base64url");

function encode(issuer: KeyPair, subject: string, name: string, nats: Record<string, unknown>): string {
  const claims: Record<string, unknown> = {
    iat: Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    name,
    sub: subject,
    nats: { ...nats, version: 2 },
  };
  claims.jti = createHash("sha256").update(JSON.stringify(claims)).digest("base64url");
  const signing = `${b64(JSON.stringify({ typ: "JWT", alg: "ed25519-nkey" }))}.${b64(JSON.stringify(claims))}`;
  return `${signing}.${b64(issuer.sign(new TextEncoder().encode(signing)))}`;
}

function credsText(jwt: string, seed: string): string {
  return `-----BEGIN NATS USER JWT-----\n${jwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`;
}

const unlimited = { subs: -1, data: -1, payload: -1 };

export function operatorMode(): OperatorMode {
  const operator = nkeys.createOperator();
  const account = nkeys.createAccount();
  const system = nkeys.createAccount();
  const user = nkeys.createUser();
  const operatorJwt = encode(operator, operator.getPublicKey(), "test-operator", {
    type: "operator",
    system_account: system.getPublicKey(),
  });
  const accountLimits = {
    ...unlimited,
    imports: -1,
    exports: -1,
    wildcards: true,
    conn: -1,
    leaf: -1,
    mem_storage: -1,
    disk_storage: -1,
    streams: -1,
    consumer: -1,
  };
  const accountJwt = encode(operator, account.getPublicKey(), "app", { type: "account", limits: accountLimits });
  const systemJwt = encode(operator, system.getPublicKey(), "SYS", {
    type: "account",
    limits: { ...accountLimits, mem_storage: 0, disk_storage: 0, streams: 0, consumer: 0 },
  });
  const userJwt = encode(account, user.getPublicKey(), "app-user", { type: "user", pub: {}, sub: {}, ...unlimited });
  const seed = new TextDecoder().decode(user.getSeed());
  const stranger = nkeys.createUser();
  const strangerAccount = nkeys.createAccount();
  const strangerJwt = encode(strangerAccount, stranger.getPublicKey(), "stranger", {
    type: "user",
    pub: {},
    sub: {},
    ...unlimited,
  });
  return {
    config: [
      `operator: ${operatorJwt}`,
      `system_account: ${system.getPublicKey()}`,
      "resolver: MEMORY",
      `resolver_preload: { ${account.getPublicKey()}: ${accountJwt}, ${system.getPublicKey()}: ${systemJwt} }`,
    ].join("\n"),
    creds: credsText(userJwt, seed),
    userSeed: seed,
    strangerCreds: credsText(strangerJwt, new TextDecoder().decode(stranger.getSeed())),
  };
}
