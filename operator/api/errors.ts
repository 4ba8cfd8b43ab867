import type { FastifyReply } from 'fastify';
import type { ApiErrorBody } from '../../crds/index.ts';
import { describeError } from '../../core/errors.ts';

/** The HTTP status of each reason the API answers with; any other reason is a 500 (or 503 for the API server). */
const STATUS_OF: Record<string, number> = {
  InvalidRequest: 400,
  WebhookPayloadInvalid: 400,
  Unauthenticated: 401,
  WebhookSignatureInvalid: 401,
  Forbidden: 403,
  CrossSiteRequest: 403,
  SyncNotFound: 404,
  RunNotFound: 404,
  RouteNotFound: 404,
  WebhookNotFound: 404,
  RequestConflict: 409,
  BodyTooLarge: 413,
  UnsupportedMediaType: 415,
  IdempotencyKeyReused: 422,
  RateLimited: 429,
  RunRecordUnreadable: 502,
  ConsoleNotBuilt: 503,
};

/** The status code of an error: its reason's, 503 when the API server cannot be reached, 500 otherwise. */
export function statusOf(reason: string): number {
  if (STATUS_OF[reason]) return STATUS_OF[reason];
  if (reason.startsWith('KubeApi')) return 503;
  return 500;
}

export function errorBody(code: number, reason: string, message: string): ApiErrorBody {
  return { error: { code, reason, message } };
}

/** Answers with the JSON error of any thrown value; the message is the SynclineError's, never a stack. */
export function sendError(reply: FastifyReply, error: unknown): FastifyReply {
  const described = describeError(error, 'InternalError');
  const code = statusOf(described.reason);
  if (code === 401) void reply.header('www-authenticate', 'Bearer realm="syncline"');
  const message = code === 500 ? 'the server failed to answer; see the operator log' : described.message;
  return reply
    .code(code)
    .type('application/json')
    .send(errorBody(code, described.reason, message));
}
