import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import * as http2 from "node:http2";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GatewayService } from "../gen/taskwire/v1/gateway_service_pb.ts";
import { createGateway, type Gateway } from "./create-gateway.ts";
import { FakeTaskBackend } from "./test-support/fake-task-backend.ts";

const index = '<!doctype html><title>console</title><script type="module" src="./assets/index-AbC123.js"></script>';
const script = `console.log("${"the console ".repeat(200)}");`;

/** A request over HTTP/1.1 with the path sent exactly as written (fetch would normalise "..", "%2e"). */
function rawGet(url: string, path: string, method = "GET"): Promise<{ status: number; head: string; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => {
      socket.end(`${method} ${path} HTTP/1.1\r\nhost: ${hostname}:${port}\r\nconnection: close\r\n\r\n`);
    });
    let text = "";
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      text += chunk;
    });
    socket.on("error", reject);
    socket.on("end", () => {
      const [head = "", body = ""] = text.split("\r\n\r\n");
      resolve({ status: Number(head.split(" ")[1]), head: head.toLowerCase(), body });
    });
  });
}

describe("the console's files, served by the gateway", () => {
  let dir: string;
  let gateway: Gateway;
  let plain: Gateway;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-console-"));
    await mkdir(join(dir, "console", "assets"), { recursive: true });
    await writeFile(join(dir, "console", "index.html"), index);
    await writeFile(join(dir, "console", "assets", "index-AbC123.js"), script);
    await writeFile(join(dir, "console", "favicon.svg"), "<svg/>");
    await writeFile(join(dir, "secret.txt"), "outside the console");
    gateway = await createGateway({ backend: new FakeTaskBackend(), console: join(dir, "console") });
    plain = await createGateway({ backend: new FakeTaskBackend(), console: false });
  });
  afterAll(async () => {
    await gateway?.close();
    await plain?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("serves index.html at / with strict security headers and no caching, and says where", async () => {
    expect(gateway.consoleUrl).toBe(`${gateway.url}/`);
    const response = await fetch(gateway.consoleUrl ?? "");
    expect(response.status).toBe(200);
    expect(await response.text()).toBe(index);
    expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(response.headers.get("cache-control")).toBe("no-cache");
    const policy = response.headers.get("content-security-policy") ?? "";
    expect(policy).toContain("script-src 'self'");
    expect(policy).toContain("frame-ancestors 'none'");
    expect(policy).not.toContain("unsafe-inline");
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    expect(response.headers.get("referrer-policy")).toBe("no-referrer");
    // Unchanged since the last look: 304, nothing sent again.
    const again = await fetch(gateway.consoleUrl ?? "", {
      headers: { "if-none-match": response.headers.get("etag") ?? "" },
    });
    expect(again.status).toBe(304);
  });

  it("serves the hashed bundles for good, gzipped where the client takes it", async () => {
    const response = await fetch(`${gateway.url}/assets/index-AbC123.js`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe(script);
    expect(response.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(response.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(response.headers.get("content-encoding")).toBe("gzip");
    const identity = await rawGet(gateway.url, "/assets/index-AbC123.js");
    expect(identity.head).not.toContain("content-encoding");
    expect(identity.body).toBe(script);
    expect((await rawGet(gateway.url, "/favicon.svg")).body).toBe("<svg/>");
    // HEAD: the headers alone.
    const head = await rawGet(gateway.url, "/", "HEAD");
    expect(head.status).toBe(200);
    expect(head.body).toBe("");
  });

  it("answers 404 to any other path, a way out of its folder included", async () => {
    for (const path of [
      "/nope",
      "/assets/",
      "/assets/../../secret.txt",
      "/../secret.txt",
      "/%2e%2e/secret.txt",
      "/assets/%2e%2e/%2e%2e/secret.txt",
      "/..%2fsecret.txt",
      "//secret.txt",
      "/assets/index-AbC123.js/..",
    ]) {
      const response = await rawGet(gateway.url, path);
      expect(response.status, path).toBe(404);
      expect(response.body, path).not.toContain("outside the console");
      expect(response.head, path).toContain("x-content-type-options: nosniff");
    }
  });

  it("also over HTTP/2, and leaves the gateway's calls alone", async () => {
    const session = http2.connect(gateway.url);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const stream = session.request({ ":path": "/", ":method": "GET" });
        stream.on("response", (headers) => resolve(Number(headers[":status"])));
        stream.on("error", reject);
        stream.resume();
      });
      expect(status).toBe(200);
    } finally {
      session.close();
    }
    const client = createClient(GatewayService, createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1" }));
    expect((await client.whoAmI({})).via).toBe("open");
    // A GET of a call's path is the call's to answer, not the console's.
    const get = await fetch(`${gateway.url}/taskwire.v1.GatewayService/WhoAmI`);
    expect(get.headers.get("content-security-policy")).toBeNull();
  });

  it("serves nothing with console: false, and refuses a folder without an index.html", async () => {
    expect(plain.consoleUrl).toBeUndefined();
    expect((await fetch(`${plain.url}/`)).status).toBe(404);
    await expect(createGateway({ backend: new FakeTaskBackend(), console: dir })).rejects.toThrow(
      /holds no index\.html: build the console there \(npm run build:console\), or pass console: false/,
    );
  });
});
