// Prints "N passed, N failed[, N skipped]" from vitest's JSON report of this run:
//   node scripts/test-summary.mjs <report.json> [<run start, ms since the epoch>]
// A missing report, or one written before the run started, is one failure; so is a
// file that failed to load, and a run that vitest itself calls unsuccessful with no
// failed test (unhandled errors, which vitest reports outside any test).
import { readFileSync } from "node:fs";

const path = process.argv[2] ?? "test-results/vitest.json";
const startedMs = Number(process.argv[3] ?? 0);
let report;
try {
  report = JSON.parse(readFileSync(path, "utf8"));
} catch (error) {
  finish(0, 1, `no vitest JSON report at ${path}: ${error.message}`);
}
if (report.startTime < startedMs) {
  finish(0, 1, `the report at ${path} is from an earlier run (${new Date(report.startTime).toISOString()})`);
}
const skipped = report.numPendingTests + report.numTodoTests;
let failed = report.numFailedTests + countFilesFailedWithoutTests(report);
if (!report.success && failed === 0) {
  console.error("vitest reported the run unsuccessful with no failed test: unhandled errors (see its output)");
  failed = 1;
}
finish(report.numPassedTests, failed, undefined, skipped);

function countFilesFailedWithoutTests(r) {
  return r.testResults.filter((f) => f.status === "failed" && !f.assertionResults.some((a) => a.status === "failed"))
    .length;
}

function finish(passed, failures, why, skipped = 0) {
  if (why) console.error(why);
  console.log(`${passed} passed, ${failures} failed${skipped ? `, ${skipped} skipped` : ""}`);
  process.exit(failures > 0 ? 1 : 0);
}
