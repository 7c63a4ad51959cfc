// A TypeDoc plugin: members of anonymous object types declared in generated code (gen/)
// need no doc comment. protoc-gen-es writes a comment on each message, field, enum value,
// service and rpc (from the .proto), but none on the parts of a type it spells out as an
// object literal: a oneof's `case` and `value`, an rpc descriptor's `methodKind`, `input`
// and `output`. Everything else still fails the notDocumented check, generated or not.
import { Converter, ReflectionKind } from "typedoc";

/** @param {import("typedoc").Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_END, (context) => {
    const project = context.project;
    const exempt = new Set();
    for (const reflection of project.getReflectionsByKind(ReflectionKind.Property)) {
      if (reflection.hasComment() || !reflection.parent?.kindOf(ReflectionKind.TypeLiteral)) continue;
      const path = project.getSymbolIdFromReflection(reflection)?.packagePath ?? "";
      if (path.startsWith("gen/")) exempt.add(reflection.getFriendlyFullName());
    }
    const listed = app.options.getValue("intentionallyNotDocumented");
    app.options.setValue("intentionallyNotDocumented", [...listed, ...exempt]);
  });
}
