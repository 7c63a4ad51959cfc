import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGateway, type Gateway } from "./create-gateway.ts";
import { isSpokenContentType } from "./media-types.ts";
import { FakeTaskBackend } from "./test-support/fake-task-backend.ts";

describe("a call in a content type the gateway does not speak", () => {
  let gateway: Gateway;
  beforeAll(async () => {
    gateway = await createGateway({ backend: new FakeTaskBackend() });
  });
  afterAll(() => gateway.close());

  const post = (path: string, headers: Record<string, string>) =>
    fetch(`${gateway.url}${path}`, { method: "POST", headers, body: '{"taskId":"x"}' });

  it("gets 415 with a body naming the accepted types, as curl -d alone sends it", async () => {
    const response = await post("/taskwire.v1.TaskService/GetTask", {
      "content-type": "application/x-www-form-urlencoded",
    });
    expect(response.status).toBe(415);
    const body = await response.text();
    expect(body).toContain('content-type "application/x-www-form-urlencoded" is not one this gateway speaks');
    expect(body).toContain("application/json, application/proto   (Connect)");
    expect(body).toContain(
      "curl -H 'content-type: application/json' -d '{...}' <gateway>/taskwire.v1.TaskService/GetTask",
    );
  });

  it("without a content type, says so", async () => {
    const response = await fetch(`${gateway.url}/taskwire.v1.TaskService/GetTask`, {
      method: "POST",
      body: new Uint8Array([1]),
    });
    expect(response.status).toBe(415);
    expect(await response.text()).toMatch(/^a request without a content-type is not one this gateway speaks/);
  });

  it("leaves other paths and spoken types to the protocols", async () => {
    expect((await post("/no.Such/Call", { "content-type": "text/plain" })).status).toBe(404);
    const json = await post("/taskwire.v1.TaskService/GetTask", { "content-type": "application/json; charset=utf-8" });
    expect(json.status).toBe(404); // NOT_FOUND from the service: the task "x" does not exist
    expect(await json.json()).toMatchObject({ code: "not_found" });
  });

  it("knows every protocol's content types", () => {
    const spoken = [
      "application/json",
      "application/proto",
      "application/connect+proto",
      "application/connect+json",
      "application/grpc",
      "application/grpc+proto",
      "application/grpc-web",
      "application/grpc-web-text+proto",
      "Application/JSON; charset=utf-8",
    ];
    expect(spoken.filter((type) => !isSpokenContentType(type))).toEqual([]);
    expect(
      ["text/plain", "application/jsonx", "application/x-www-form-urlencoded"].filter(isSpokenContentType),
    ).toEqual([]);
  });
});
