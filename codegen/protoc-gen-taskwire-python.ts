#!/usr/bin/env node
/**
 * protoc-gen-taskwire-python, the protoc/buf plugin of typed Python handlers.
 * In buf.gen.yaml, beside protoc's python and pyi generators:
 *
 * ```yaml
 * - local: ["node", "codegen/protoc-gen-taskwire-python.ts"]
 *   out: gen
 * ```
 */
import { runNodeJs } from "@bufbuild/protoplugin";
import { pythonPlugin } from "./python-plugin.ts";

runNodeJs(pythonPlugin);
