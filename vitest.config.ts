import { defineConfig } from "vitest/config";

// Source files import the package by its own name ("taskwire", "taskwire/worker");
// the "taskwire-source" export condition maps those to the TypeScript sources.
const conditions = ["taskwire-source", "node", "import", "module", "default"];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ["taskwire-source"] } },
  test: {
    include: [
      "test/**/*.test.ts",
      "codegen/**/*.test.ts",
      "sdk/**/*.test.ts",
      "server/**/*.test.ts",
      "worker-runtime/**/*.test.ts",
      "cli/**/*.test.ts",
      "testing/**/*.test.ts",
    ],
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ["default", "json"],
    outputFile: { json: "test-results/vitest.json" },
  },
});
