import { z } from 'zod';
import { stringify } from 'yaml';
import { apiError, IDEMPOTENCY_HEADER, MAX_WAIT_SECONDS, runList, runRequestBody, runView } from './api.ts';

/**
 * One route of the operator's HTTP API: the contract the server, the OpenAPI document, the CLI, the
 * Python client and the console share. The server's test checks that it serves exactly these.
 */
export interface ApiRoute {
  method: 'get' | 'post';
  /** OpenAPI form: `{param}`. */
  path: string;
  summary: string;
  /** The RBAC verb on syncs.syncline.io the caller needs (SubjectAccessReview); none: not by token. */
  verb?: string;
  query?: Record<string, { description: string; schema: Record<string, unknown> }>;
  headers?: Record<string, string>;
  body?: z.ZodType;
  responses: Record<number, { description: string; schema?: z.ZodType }>;
}

/** The path of one Sync in the API. */
export const SYNC_PATH = '/api/v1/namespaces/{namespace}/syncs/{name}';
const SYNC = SYNC_PATH;
/** The errors every authenticated route may answer with. */
export const API_ERRORS = {
  400: { description: 'Malformed request (InvalidRequest).', schema: apiError },
  401: {
    description: 'No token, or one the API server does not accept (Unauthenticated).',
    schema: apiError,
  },
  403: { description: 'RBAC does not allow the verb (Forbidden).', schema: apiError },
  404: { description: 'No such Sync or run (SyncNotFound, RunNotFound).', schema: apiError },
  429: {
    description: 'Too many requests from this caller (RateLimited); see Retry-After.',
    schema: apiError,
  },
};

export const RUN_API_ROUTES: ApiRoute[] = [
  {
    method: 'get',
    path: '/api/v1/healthz',
    summary: 'Whether this replica serves the API (no token needed).',
    responses: { 200: { description: 'It does.', schema: z.object({ ok: z.literal(true) }) } },
  },
  {
    method: 'post',
    path: `${SYNC}/runs`,
    summary: 'Request a run of a Sync (optionally a full resync).',
    verb: 'trigger',
    headers: {
      [IDEMPOTENCY_HEADER]:
        'A key of the caller for this request (1-255 printable ASCII characters): a retried POST with the same key names the same run and starts none.',
    },
    body: runRequestBody,
    responses: {
      200: {
        description:
          'Joined a pending request, or replayed an earlier one with the same key (header Idempotent-Replayed: true).',
        schema: runView,
      },
      202: { description: 'Requested; the Location header is the run.', schema: runView },
      ...API_ERRORS,
      409: { description: 'The Sync kept changing (RequestConflict); retry.', schema: apiError },
      413: { description: 'The body is too large (BodyTooLarge).', schema: apiError },
      415: { description: 'The body is not JSON (UnsupportedMediaType).', schema: apiError },
      422: {
        description: 'The Idempotency-Key was used for another request (IdempotencyKeyReused).',
        schema: apiError,
      },
    },
  },
  {
    method: 'get',
    path: `${SYNC}/runs`,
    summary: "A Sync's runs: the pending request, the active run, then its history.",
    verb: 'get',
    responses: { 200: { description: 'The runs.', schema: runList }, ...API_ERRORS },
  },
  {
    method: 'get',
    path: `${SYNC}/runs/{id}`,
    summary: 'One run; with wait, answered when it has finished or the wait is over.',
    verb: 'get',
    query: {
      wait: {
        description: `Seconds (or a duration like 30s) to wait for the run to finish; at most ${MAX_WAIT_SECONDS}.`,
        schema: { type: 'string', pattern: '^[0-9]+$|^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$' },
      },
    },
    responses: { 200: { description: 'The run, as it is now.', schema: runView }, ...API_ERRORS },
  },
];

const schemaOf = (schema: z.ZodType) =>
  z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'output', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;

function pathParameters(path: string) {
  return [...path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({
    name,
    in: 'path',
    required: true,
    schema: { type: 'string' },
  }));
}

function operation(route: ApiRoute) {
  return {
    summary: route.summary,
    ...(route.verb
      ? { description: `Needs the verb \`${route.verb}\` on syncs.syncline.io in the namespace (RBAC).` }
      : {}),
    ...(route.verb ? { security: [{ kubernetesToken: [] }] } : {}),
    parameters: [
      ...pathParameters(route.path),
      ...Object.entries(route.query ?? {}).map(([name, q]) => ({ name, in: 'query', required: false, ...q })),
      ...Object.entries(route.headers ?? {}).map(([name, description]) => ({
        name,
        in: 'header',
        required: false,
        description,
        schema: { type: 'string', maxLength: 255 },
      })),
    ],
    ...(route.body
      ? {
          requestBody: { required: false, content: { 'application/json': { schema: schemaOf(route.body) } } },
        }
      : {}),
    responses: Object.fromEntries(
      Object.entries(route.responses).map(([code, r]) => [
        code,
        {
          description: r.description,
          ...(r.schema ? { content: { 'application/json': { schema: schemaOf(r.schema) } } } : {}),
        },
      ]),
    ),
  };
}

/** The OpenAPI 3.0 document of the API (docs/api/openapi.yaml). */
export function apiDocument(routes: ApiRoute[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) (paths[route.path] ??= {})[route.method] = operation(route);
  return {
    openapi: '3.0.3',
    info: {
      title: 'Syncline operator API',
      version: 'v1',
      description:
        'Start runs of Syncs and read their results. Served by every operator replica on its API port. Authenticate with a Kubernetes bearer token (TokenReview); RBAC decides what a caller may do (SubjectAccessReview).',
    },
    components: {
      securitySchemes: {
        kubernetesToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'A token the cluster accepts, e.g. kubectl create token <service-account>.',
        },
      },
    },
    paths,
  };
}

export function renderApiDocument(routes: ApiRoute[]): string {
  return `# Generated from crds/api-doc.ts by npm run generate; do not edit.\n${stringify(apiDocument(routes), { lineWidth: 0 })}`;
}
