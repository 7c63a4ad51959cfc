/** The handler module of the Taskwire worker processes: returns the payload as it came. */
import { implementEchoService } from "../gen/bench/v1/bench_taskwire.ts";

export const echo = implementEchoService({
  echo: async (request) => ({ text: request.text }),
});
