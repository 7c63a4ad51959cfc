import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import type * as http from "node:http";
import { dirname, extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import type { connectNodeAdapter } from "@connectrpc/connect-node";

type Request = Parameters<ReturnType<typeof connectNodeAdapter>>[0];
type Response = Parameters<ReturnType<typeof connectNodeAdapter>>[1];

/**
 * Where the built console is: `dist/console` of the package, whether this
 * module runs compiled from `dist/server/` or as TypeScript from `server/`.
 */
function defaultConsoleDirectory(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return import.meta.url.endsWith(".ts") ? join(here, "..", "dist", "console") : join(here, "..", "console");
}

/**
 * The console's directory to serve: the one given, none for `false`, and by
 * default the package's own when it has been built. A directory given without
 * an index.html is an error naming it.
 */
export function consoleDirectoryOf(option: string | false | undefined): string | undefined {
  if (option === false) return undefined;
  if (option === undefined) {
    const built = defaultConsoleDirectory();
    return existsSync(join(built, "index.html")) ? built : undefined;
  }
  if (!existsSync(join(option, "index.html"))) {
    throw new Error(
      `console: ${option} holds no index.html: build the console there (npm run build:console), or pass console: false to serve none`,
    );
  }
  return option;
}

/** The headers every answer of the console carries. */
const securityHeaders: http.OutgoingHttpHeaders = {
  // Scripts and styles only from the gateway's own files, none inline; calls only to the gateway.
  "content-security-policy": [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; "),
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
};

/** Content types worth compressing. */
const compressible = new Set([".html", ".js", ".css", ".svg", ".json", ".txt"]);

/** One file of the console, ready to send. */
interface ConsoleFile {
  readonly body: Buffer;
  /** The gzip of the body, where it is smaller. */
  readonly gzip: Buffer | undefined;
  readonly headers: http.OutgoingHttpHeaders;
  readonly etag: string;
}

/**
 * Reads every file of the built console into memory, by the path it is served
 * at: `/` for index.html, `/assets/<name>` for the bundles (named by their
 * hash, so cached for good), `/<name>` for the rest. Only these paths are ever
 * answered, so no request can reach a file outside the directory.
 */
export async function loadConsole(directory: string): Promise<ReadonlyMap<string, ConsoleFile>> {
  const files = new Map<string, ConsoleFile>();
  for (const entry of await readdir(directory, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const name = relative(directory, path).split(sep).join("/");
    const body = await readFile(path);
    const extension = extname(name);
    const immutable = name.startsWith("assets/");
    const gzip = compressible.has(extension) ? gzipSync(body) : undefined;
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
    files.set(name === "index.html" ? "/" : `/${name}`, {
      body,
      gzip: gzip && gzip.length < body.length ? gzip : undefined,
      etag,
      headers: {
        ...securityHeaders,
        "content-type": contentTypes[extension] ?? "application/octet-stream",
        // index.html names the current bundles: always checked again (cheaply, by its etag).
        "cache-control": immutable ? "public, max-age=31536000, immutable" : "no-cache",
        etag,
      },
    });
  }
  if (!files.has("/")) throw new Error(`console: ${directory} holds no index.html`);
  return files;
}

/**
 * Serves the console's files to GET and HEAD requests for any path that is not
 * one of the gateway's calls (`rpcPaths`), and returns true for them: the file
 * at that path, or 404. Other requests are left to the other routes (false).
 * The files hold no secret and are served without authentication; every call
 * the page then makes goes through the gateway's.
 */
export function serveConsole(
  files: ReadonlyMap<string, ConsoleFile>,
  rpcPaths: ReadonlySet<string>,
): (request: Request, response: Response) => boolean {
  return (request, response) => {
    if (request.method !== "GET" && request.method !== "HEAD") return false;
    const path = (request.url ?? "/").split("?")[0] ?? "/";
    if (rpcPaths.has(path)) return false;
    const reply = response as http.ServerResponse;
    const file = files.get(path === "/index.html" ? "/" : path);
    if (!file) {
      const text = `no such page: ${path.slice(0, 200)} (the console is at /)\n`;
      reply.writeHead(404, { ...securityHeaders, "content-type": "text/plain; charset=utf-8" });
      reply.end(request.method === "HEAD" ? undefined : text);
      return true;
    }
    if (request.headers["if-none-match"] === file.etag) {
      reply.writeHead(304, { ...file.headers });
      reply.end();
      return true;
    }
    const gzip = file.gzip && /\bgzip\b/.test(String(request.headers["accept-encoding"] ?? "")) ? file.gzip : undefined;
    const body = gzip ?? file.body;
    reply.writeHead(200, {
      ...file.headers,
      ...(file.gzip ? { vary: "accept-encoding" } : {}),
      ...(gzip ? { "content-encoding": "gzip" } : {}),
      "content-length": body.length,
    });
    reply.end(request.method === "HEAD" ? undefined : body);
    return true;
  };
}
