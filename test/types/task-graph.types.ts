/**
 * Compile-time checks of typed graphs, run by `tsc -p .` (npm run lint, and the
 * toolchain test): each `@ts-expect-error` marks a graph that must not compile,
 * and fails the check if it ever does. test/integration/children.test.ts runs
 * graphs that do.
 */
import { taskGraph } from "../../worker-runtime/task-graph.ts";
import { implementFamilyService, stepService } from "../gen/family/v1/family_taskwire.ts";

const { parse, count, report } = stepService.methods;

// Parse returns Parsed, which Count takes: it compiles.
export const fits = taskGraph(parse).next(count);

// @ts-expect-error Report takes a ReportRequest, not Parse's Parsed.
export const mismatch = taskGraph(parse).next(report);

// A map from the previous output to the next input makes it fit; a wrong map does not.
export const mapped = taskGraph(parse).next(report, (parsed) => ({ line: parsed.words.join(" ") }));
// @ts-expect-error `count` is no field of ReportRequest.
export const wrongMap = taskGraph(parse).next(report, (parsed) => ({ count: parsed.words.length }));

// A graph is the handler of an rpc with its input and output: Pipeline takes a
// ParseRequest and returns a ReportResponse; a graph from Count does not fit it.
export const wrongHandler = implementFamilyService({
  // @ts-expect-error the graph takes Parsed, the rpc's request is a ParseRequest.
  pipeline: taskGraph(count)
    .next(report, (c) => ({ line: `${c.count}` }))
    .handler(),
  fan: async () => ({}),
});
