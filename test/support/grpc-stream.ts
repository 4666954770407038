import { constants, type ClientHttp2Session, type ClientHttp2Stream } from "node:http2";

/**
 * A gRPC call's HTTP/2 stream on `session`, opened with the headers a gRPC
 * client sends; the test writes the request frames itself (raw bytes,
 * garbage, several messages) and reads grpc-status from the answer.
 */
export function openGrpcStream(session: ClientHttp2Session, path: string): ClientHttp2Stream {
  return session.request({
    [constants.HTTP2_HEADER_METHOD]: "POST",
    [constants.HTTP2_HEADER_PATH]: path,
    "content-type": "application/grpc",
    te: "trailers",
  });
}
