/**
 * A command used wrongly (an unknown flag, a bad value, a missing argument), or
 * a destructive one refused for want of confirmation: nothing was done, and
 * the command exits 2 instead of 1.
 */
export class UsageError extends Error {
  override readonly name = "UsageError";
}
