// Submits a task through the gateway and prints its typed result:
//   node src/client.ts Ada
import { createClient } from "taskwire";
import { createGreeterServiceClient } from "../gen/greeter/v1/greeter_taskwire.ts";

const client = await createClient({ gateway: process.env.TASKWIRE_GATEWAY ?? "http://127.0.0.1:8080" });
try {
  const task = await createGreeterServiceClient(client).greet({ name: process.argv[2] ?? "world" });
  const { message } = await task.result();
  console.log(message);
} finally {
  await client.close();
}
