import type { FileRegistry } from "@bufbuild/protobuf";
import type { Any } from "@bufbuild/protobuf/wkt";
import { decodeAny } from "../task-types.ts";

/** A payload or result shown as JSON from its Protobuf schema, with its type's name. */
export function JsonView({ any, registry }: { readonly any: Any; readonly registry: FileRegistry }) {
  const decoded = decodeAny(any, registry);
  return (
    <figure class="json">
      <figcaption>{decoded.typeName}</figcaption>
      {"json" in decoded ? (
        <pre>{JSON.stringify(decoded.json, null, 2)}</pre>
      ) : (
        <p class="problem">{decoded.problem}</p>
      )}
    </figure>
  );
}
