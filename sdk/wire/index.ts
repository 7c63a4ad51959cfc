/**
 * Wire formats, pure and shared: the Protobuf binary codec of the hot path, Connect
 * and gRPC envelopes, gRPC-Web headers. The lowest layer: it imports nothing of the SDK.
 *
 * @module
 */

export { decodeBody, encodeBody } from "./binary-body.ts";
export {
  type Compression,
  codeToHttpStatus,
  endStreamFlag,
  endStreamFromJson,
  endStreamToJson,
  errorFromJsonBytes,
  errorToJsonBytes,
  invokeUnaryImplementation,
  parseConnectTimeout,
  parseGrpcTimeout,
  setTrailerStatus,
  trailerDemux,
  trailerFlag,
  trailerMux,
  trailerSerialize,
  transformInvokeImplementation,
  validateConnectResponse,
  validateGrpcResponse,
  validateTrailer,
} from "./connect-internals.ts";
export { EnvelopeSplitter, envelope } from "./envelope.ts";
export { renumberFields } from "./renumber-fields.ts";
export { webHeaders } from "./web-headers.ts";
export { concatMessages, decodeMessage, encodeMessage, packMessage, scanMessage } from "./wire-codec.ts";
