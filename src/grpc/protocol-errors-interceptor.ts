import { ServerInterceptingCall, status as Status, type ServerInterceptor } from "@grpc/grpc-js";

// grpc-js answers a call that ends without a complete request message (or
// sends two to a unary or server-streaming method) with UNIMPLEMENTED, which
// tells a client the method does not exist. It is the client's malformed
// request, so it becomes INVALID_ARGUMENT with grpc-js's own explanation.
const MALFORMED_STREAM = /^Received (no request message|a second request message)/;

/** Rewrites grpc-js's protocol-error statuses into what they mean to a client; for every service. */
export const protocolErrorsInterceptor: ServerInterceptor = (_method, call) =>
  new ServerInterceptingCall(call, {
    sendStatus: (status, next) => {
      if (status.code === Status.UNIMPLEMENTED && MALFORMED_STREAM.test(status.details ?? "")) {
        next({ ...status, code: Status.INVALID_ARGUMENT });
      } else {
        next(status);
      }
    },
  });
