/**
 * The handler module of HTTP executor pools (`worker.pools[].http` in
 * taskwire.yaml): every task service of TASKWIRE_HTTP_SERVICES (generated
 * modules, a JSON list) with a target in TASKWIRE_HTTP_TARGETS (a JSON map of
 * "<type>/<Method>" to URL) is run by POSTing to those URLs.
 */
import { loadDefinitions } from "../sdk/core/index.ts";
import { implementHttpService } from "./http-executor.ts";

const read = (name: string): unknown => {
  const value = process.env[name];
  if (!value) throw new Error(`HTTP worker: ${name} is not set`);
  return JSON.parse(value);
};
const targets = read("TASKWIRE_HTTP_TARGETS") as Record<string, string>;
const definitions = await loadDefinitions(read("TASKWIRE_HTTP_SERVICES") as string[]);

const byType = new Map<string, Record<string, string>>();
for (const [target, url] of Object.entries(targets)) {
  const [workerType = "", method = ""] = target.split("/");
  if (!definitions.some((d) => d.workerType === workerType)) {
    throw new Error(`HTTP worker: "${target}" names no worker type of the services loaded`);
  }
  byType.set(workerType, { ...byType.get(workerType), [method]: url });
}

/** One implementation per worker type with targets. */
export const implementations = definitions
  .filter((definition) => byType.has(definition.workerType))
  .map((definition) => implementHttpService(definition, byType.get(definition.workerType) ?? {}));
