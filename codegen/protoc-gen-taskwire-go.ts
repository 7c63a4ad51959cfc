#!/usr/bin/env node
/**
 * protoc-gen-taskwire-go, the protoc/buf plugin for Go workers. In buf.gen.yaml,
 * beside protoc-gen-go:
 *
 * ```yaml
 * - local: ["node", "codegen/protoc-gen-taskwire-go.ts"]
 *   out: gen
 *   opt: paths=source_relative
 * ```
 */
import { runNodeJs } from "@bufbuild/protoplugin";
import { goPlugin } from "./go-plugin.ts";

runNodeJs(goPlugin);
