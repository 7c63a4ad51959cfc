import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { apiKeyHash, parsePermissions } from "../server/index.ts";

/** What `taskwire key create` was asked for. */
export interface NewKeyOptions {
  readonly name: string | undefined;
  readonly permissions: readonly string[];
  readonly expires: string | undefined;
  /** Where the key goes: a new file, readable by its owner only. */
  readonly out: string | undefined;
}

/**
 * `taskwire key create --name N --permission P... [--expires DATE] [--out FILE]`:
 * a new random API key, written to a file of its own (mode 600, never
 * overwritten) and never printed; returns the lines to print: the entry for
 * taskwire.yaml, with the key's SHA-256 only, and how to use the key.
 */
export async function createApiKey(options: NewKeyOptions): Promise<string[]> {
  const { name } = options;
  if (!name || !/^[A-Za-z0-9][A-Za-z0-9._@-]*$/.test(name)) {
    throw new Error("--name is required: letters, digits, '.', '_', '@' or '-', e.g. --name billing");
  }
  if (options.permissions.length === 0) {
    throw new Error('give at least one --permission, e.g. --permission submit:billing --permission "read:*"');
  }
  parsePermissions(options.permissions, "--permission");
  let expires: string | undefined;
  if (options.expires !== undefined) {
    const date = new Date(options.expires);
    if (Number.isNaN(date.getTime())) throw new Error(`--expires "${options.expires}" is not a date, e.g. 2027-06-01`);
    expires = date.toISOString();
  }
  const key = `tw_${randomBytes(32).toString("base64url")}`;
  const file = resolve(options.out ?? `taskwire-key-${name}`);
  try {
    await writeFile(file, `${key}\n`, { mode: 0o600, flag: "wx" });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(
      code === "EEXIST" ? `${file} exists: choose another --out` : `cannot write ${file}: ${(error as Error).message}`,
    );
  }
  return [
    `API key "${name}" written to ${file} (readable by you only; it is not shown anywhere else).`,
    "Add it to taskwire.yaml, under gateway.auth.apiKeys:",
    `  - name: ${name}`,
    `    sha256: "${apiKeyHash(key)}"`,
    `    permissions: [${options.permissions.map((p) => JSON.stringify(p)).join(", ")}]`,
    ...(expires ? [`    expires: ${expires}`] : []),
    `Callers send it as "authorization: Bearer <key>"; the CLI reads it with --token-file ${file} or TASKWIRE_TOKEN.`,
  ];
}
