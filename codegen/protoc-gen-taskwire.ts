#!/usr/bin/env node
/**
 * protoc-gen-taskwire, the protoc/buf plugin. In buf.gen.yaml:
 *
 * ```yaml
 * - local: ["node", "codegen/protoc-gen-taskwire.ts"]
 *   out: gen
 *   opt: [target=ts, import_extension=js]
 * ```
 */
import { runNodeJs } from "@bufbuild/protoplugin";
import { taskwirePlugin } from "./taskwire-plugin.ts";

runNodeJs(taskwirePlugin);
