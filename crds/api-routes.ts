import { RUN_API_ROUTES, type ApiRoute } from './api-doc.ts';
import { WEBHOOK_ROUTES } from './webhooks.ts';
import { CONSOLE_ROUTES } from './console-api.ts';

/** Every route the operator's HTTP server answers (docs/api/openapi.yaml): the run API, webhooks, the console's reads. */
export const API_ROUTES: ApiRoute[] = [...RUN_API_ROUTES, ...WEBHOOK_ROUTES, ...CONSOLE_ROUTES];
