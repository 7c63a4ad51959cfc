import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { getComments } from "@bufbuild/protoplugin";

/**
 * An error in the user's protos, located at `file.proto:line:column` so editors
 * and CI logs point at the offending declaration.
 */
export class PluginError extends Error {
  override name = "PluginError";

  constructor(desc: DescService | DescMethod, problem: string) {
    super(`${location(desc)}: ${problem}`);
  }
}

function location(desc: DescService | DescMethod): string {
  const file = desc.kind === "service" ? desc.file : desc.parent.file;
  const path = getComments(desc).sourcePath;
  const found = file.proto.sourceCodeInfo?.location.find(
    (l) => l.path.length === path.length && l.path.every((p, i) => p === path[i]),
  );
  // span is [start line, start column, ...], zero-based.
  return found ? `${file.name}.proto:${(found.span[0] ?? 0) + 1}:${(found.span[1] ?? 0) + 1}` : `${file.name}.proto`;
}
