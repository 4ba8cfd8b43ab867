// The one error every SQL source gives a model that is not a single read-only SELECT: more than one
// statement, or a statement (or a function it calls) that writes.
import { SynclineError } from '../../core/errors.ts';
import type { StageRequest } from '../../core/connectors.ts';

export const MODEL_NOT_READ_ONLY = 'ModelNotReadOnly';

/** "Model ns/name", or "the Model" where the runner did not say which. */
export function modelLabel(labels: StageRequest['labels']): string {
  return labels.model ? `Model ${labels.model}` : 'the Model';
}

/**
 * `what` is the database's own refusal (its message and code), `database` its name. The message says what
 * Syncline runs the query as, so that a person sees why a query that works in a console is refused.
 */
export function modelNotReadOnly(
  labels: StageRequest['labels'],
  database: string,
  what: string,
  cause?: unknown,
): SynclineError {
  return new SynclineError(
    MODEL_NOT_READ_ONLY,
    `${modelLabel(labels)} must be a single read-only SELECT: Syncline runs it as one statement in a read-only ` +
      `transaction, and ${database} refused it: ${what}. Remove any other statement and anything that writes ` +
      `(INSERT, UPDATE, DELETE, DDL, sequences, functions that modify data).`,
    cause === undefined ? {} : { cause },
  );
}
