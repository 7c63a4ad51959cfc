import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** PEM files made by {@link makeCertificates}. */
export interface Certificates {
  /** The CA's certificate, which clients trust. */
  readonly ca: string;
  /** A certificate signed by the CA, and its key, per name asked for. */
  readonly issued: Record<string, { readonly cert: string; readonly key: string }>;
}

/**
 * A test CA (P-256, valid two days) in `dir`, and for each of `names` a
 * certificate it signed with subject CN=<name>, for localhost and 127.0.0.1.
 */
export async function makeCertificates(dir: string, names: readonly string[]): Promise<Certificates> {
  await mkdir(dir, { recursive: true });
  const openssl = (...args: string[]) => run("openssl", args, { cwd: dir });
  const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl(
    "req",
    "-x509",
    ...newKey,
    "-days",
    "2",
    "-subj",
    "/CN=taskwire-test-ca",
    "-keyout",
    "ca-key.pem",
    "-out",
    "ca.pem",
  );
  const issued: Record<string, { cert: string; key: string }> = {};
  for (const name of names) {
    await openssl("req", ...newKey, "-subj", `/CN=${name}`, "-keyout", `${name}-key.pem`, "-out", `${name}.csr`);
    await run("sh", ["-c", `printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ${name}.ext`], { cwd: dir });
    await openssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca-key.pem",
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.pem`,
    );
    issued[name] = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}-key.pem`) };
  }
  return { ca: join(dir, "ca.pem"), issued };
}
