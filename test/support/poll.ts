/**
 * Calls `check` until it returns a value other than undefined, and returns it;
 * throws when `timeoutMs` passes first (with the last error, if any).
 */
export async function poll<T>(check: () => Promise<T | undefined>, timeoutMs = 20_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`condition not met within ${timeoutMs}ms${lastError ? `: ${(lastError as Error).message}` : ""}`);
}
