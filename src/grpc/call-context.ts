import type { Metadata } from "@grpc/grpc-js";
import type { Identity } from "../core/authorization.js";
import type { SubmitDecision } from "../core/submit.js";
import type { TraceHeaders } from "../tracing.js";

/**
 * What the interceptor established for one call, handed to its handler: who
 * is calling and, for Submit, the decision already made and stored.
 */
export interface CallContext {
  readonly caller: Identity;
  /** The call's W3C trace headers, read only when tracing is on. */
  readonly trace?: TraceHeaders;
  submit?: SubmitDecision;
}

// Keyed by the request metadata grpc-js hands on from the interceptor to the
// handler (call.metadata): the one object every kind of call has from its
// start, which no client can forge or swap.
const contexts = new WeakMap<Metadata, CallContext>();

/** Attaches a call's context; the interceptor does, once per call. */
export function attachCallContext(metadata: Metadata, context: CallContext): void {
  contexts.set(metadata, context);
}

/** The context the interceptor attached to this call. */
export function callContextOf(call: { readonly metadata: Metadata }): CallContext {
  const context = contexts.get(call.metadata);
  if (!context) throw new Error("a call reached its handler without a context; is the interceptor installed?");
  return context;
}
