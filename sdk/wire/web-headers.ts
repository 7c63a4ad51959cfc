import type { IncomingHttpHeaders } from "node:http";

/** Node's incoming HTTP/1.1 or HTTP/2 headers as web Headers, without HTTP/2's pseudo-headers. */
export function webHeaders(incoming: IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(incoming)) {
    if (name.startsWith(":") || value === undefined) continue;
    if (Array.isArray(value)) for (const each of value) headers.append(name, each);
    else headers.append(name, value);
  }
  return headers;
}
