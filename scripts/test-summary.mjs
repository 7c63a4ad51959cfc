// Prints "N passed, N failed[, N skipped]" from vitest's JSON report.
import { readFileSync } from "node:fs";

const path = process.argv[2] ?? "test-results/vitest.json";
let report;
try {
  report = JSON.parse(readFileSync(path, "utf8"));
} catch (error) {
  console.error(`no vitest JSON report at ${path}: ${error.message}`);
  console.log("0 passed, 1 failed");
  process.exit(1);
}
const skipped = report.numPendingTests + report.numTodoTests;
// A test file that failed to load has no failed tests but does fail the run.
const failed = report.numFailedTests + countFilesFailedWithoutTests(report);
console.log(`${report.numPassedTests} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 ? 1 : 0);

function countFilesFailedWithoutTests(r) {
  return r.testResults.filter((f) => f.status === "failed" && !f.assertionResults.some((a) => a.status === "failed"))
    .length;
}
