// The handlers: one typed method per rpc of GreeterService. The worker runtime loads this
// module (taskwire.yaml, worker.pools) and runs every task service it exports.
import { NonRetryableError } from "taskwire/worker";
import { implementGreeterService } from "../gen/greeter/v1/greeter_taskwire.ts";

export const greeter = implementGreeterService({
  async greet(request, ctx) {
    // A failure no retry can fix ends the task at once; any other error is retried.
    if (request.name.length > 100) throw new NonRetryableError("name is longer than 100 characters");
    ctx.progress(0.5, "thinking of a greeting");
    return { message: `Hello, ${request.name}!` };
  },
});
