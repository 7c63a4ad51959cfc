import { createHash } from "node:crypto";
import { NonRetryableError } from "taskwire/worker";
import { implementHashService } from "../gen/example/v1/hash_taskwire.ts";

/** The hasher worker type: a quick CPU task. */
export const hasher = implementHashService({
  async digest(request) {
    const algorithm = request.algorithm || "sha256";
    if (algorithm !== "sha256" && algorithm !== "sha512") {
      throw new NonRetryableError(`unsupported algorithm "${algorithm}": use sha256 or sha512`);
    }
    const rounds = request.rounds || 1;
    if (rounds > 1_000_000) throw new NonRetryableError(`rounds must be at most 1000000, got ${rounds}`);
    let digest = createHash(algorithm).update(request.text).digest();
    for (let i = 1; i < rounds; i++) digest = createHash(algorithm).update(digest).digest();
    return { hex: digest.toString("hex"), rounds };
  },
});
