// TypeDoc's configuration for the API reference, docs/api/ (scripts/api-docs.sh runs it).
import { OptionDefaults } from "typedoc";

/** @type {Partial<import("typedoc").TypeDocOptions & import("typedoc-plugin-markdown").PluginOptions>} */
export default {
  name: "Taskwire API reference",
  // The package's entry points: taskwire, taskwire/worker, taskwire/server, taskwire/testing,
  // taskwire/protocol (each names itself with its @module tag).
  entryPoints: [
    "../../sdk/index.ts",
    "../../worker-runtime/index.ts",
    "../../server/index.ts",
    "../../testing/index.ts",
    "../../sdk/protocol.ts",
  ],
  tsconfig: "./tsconfig.json",
  plugin: ["typedoc-plugin-markdown", "./generated-members.mjs"],
  // One Markdown page per entry point, and an index page that lists them.
  outputFileStrategy: "modules",
  entryFileName: "README.md",
  readme: "none",
  hidePageHeader: true,
  // No "defined in file:line": the pages change when the API does, not when a line moves.
  disableSources: true,
  // tsc (TypeScript 7) type-checks the repository; this TypeScript 6 only reads it.
  skipErrorChecking: true,
  excludePrivate: true,
  excludeInternal: true,
  // Members inherited from ConnectError and Error are connect's and Node's to document.
  excludeExternals: true,
  // `@default` is prose here ("the service's own"), not a code sample.
  jsDocCompatibility: { defaultTag: false },
  // protoc-gen-es marks each generated declaration `@generated from ...`.
  blockTags: [...OptionDefaults.blockTags, "@generated"],
  // Every public symbol has a doc comment, every {@link} resolves, and every type the API
  // names is exported (but for these two helpers of runTaskHandler's signature).
  validation: { notExported: true, invalidLink: true, notDocumented: true },
  intentionallyNotExported: ["InputOf", "OutputOf"],
  treatWarningsAsErrors: true,
};
