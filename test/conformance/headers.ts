import { create } from "@bufbuild/protobuf";
import { type Header, HeaderSchema } from "./gen/connectrpc/conformance/v1/service_pb.ts";

/** Headers as the suite's Header messages, one per name. */
export function headerList(headers: Headers): Header[] {
  const list: Header[] = [];
  headers.forEach((value, name) => {
    list.push(create(HeaderSchema, { name, value: [value] }));
  });
  return list;
}

/** Appends each value of the suite's Header messages to `target`. */
export function appendHeaders(target: Headers, headers: readonly Header[] | undefined): void {
  for (const { name, value } of headers ?? []) for (const v of value) target.append(name, v);
}
