import { setTimeout as sleep } from "node:timers/promises";
import { NonRetryableError } from "taskwire/worker";
import { implementReportService } from "../gen/example/v1/report_taskwire.ts";

/** The reports worker type: a long task that reports progress. */
export const reports = implementReportService({
  async generate(request, ctx) {
    if (request.sections > 1000) throw new NonRetryableError(`sections must be at most 1000, got ${request.sections}`);
    if (request.sectionMs > 60_000)
      throw new NonRetryableError(`section_ms must be at most 60000, got ${request.sectionMs}`);
    const lines: string[] = [];
    for (let i = 1; i <= request.sections; i++) {
      // The signal aborts on deadline, cancellation and shutdown.
      await sleep(request.sectionMs, undefined, { signal: ctx.signal });
      lines.push(
        `${request.title}: section ${i} of ${request.sections} (attempt ${ctx.attempt}, worker ${ctx.workerId})`,
      );
      ctx.progress(i / request.sections, `section ${i} of ${request.sections}`);
    }
    return { body: lines.join("\n"), sections: request.sections };
  },
});
