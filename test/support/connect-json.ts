/** A Connect JSON call's answer as curl sees it: the HTTP status and the parsed body. */
export interface JsonAnswer<T> {
  readonly status: number;
  readonly body: T;
}

/** Calls `taskwire.v1.TaskService/<method>` on a gateway in JSON over plain HTTP, as curl would. */
export async function callTaskServiceJson<T = Record<string, never>>(
  gatewayUrl: string,
  method: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<JsonAnswer<T>> {
  const response = await fetch(`${gatewayUrl}/taskwire.v1.TaskService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as T };
}
