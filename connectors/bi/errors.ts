// A failed BI-tool API request as the reason a run fails with. The client (connectors/saas/client.ts) has
// already retried 429, 5xx and network failures of reads, and redacted every credential from the message.
import { SynclineError } from '../../core/errors.ts';
import { ApiError } from '../saas/client.ts';

export interface BiErrorContext {
  /** "Metabase", "Looker". */
  vendor: string;
  /** What a 404 means here, e.g. `Metabase question 42`; undefined: a 404 is no reason of its own. */
  notFound?: string;
  /** Where the credentials are, for the AuthenticationFailed message. */
  credentials: string;
}

export function biError(error: unknown, ctx: BiErrorContext): Error {
  if (error instanceof SynclineError || !(error instanceof ApiError)) return error as Error;
  if (error.unauthorized)
    return new SynclineError(
      'AuthenticationFailed',
      `${ctx.vendor} refused the credentials (HTTP ${error.status ?? 401}); check ${ctx.credentials}`,
    );
  if (error.status === 403)
    return new SynclineError(
      'PermissionDenied',
      `${error.message}. Give the ${ctx.vendor} API user view access to the question (and query access to its database for as: results)`,
    );
  if (error.status === 404 && ctx.notFound)
    return new SynclineError(
      'BiQuestionNotFound',
      `${ctx.notFound} does not exist in ${ctx.vendor}, or the API user cannot see it; check the id in the Model`,
    );
  if (error.retryable)
    return new SynclineError('SourceUnreachable', `${error.message} (retried)`, {
      retryable: true,
      cause: error,
    });
  return new SynclineError('SourceQueryFailed', error.message, { cause: error });
}
