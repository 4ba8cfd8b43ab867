import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SynclineError } from '../../core/errors.ts';
import { sendError } from './errors.ts';

/** Where `npm run build:console` writes the console (git-ignored; the image builds it). */
export const DEFAULT_CONSOLE_DIST = fileURLToPath(new URL('../console/dist/', import.meta.url));

export const CONSOLE_PATH = '/console/';

/**
 * The console's own code only: no inline script or style, no other origin (no CDN, no fonts), no framing.
 * uPlot and Preact set styles through the CSSOM, which style-src does not restrict.
 */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers of every console page and asset. */
export const CONSOLE_HEADERS: Record<string, string> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  // Unhashed file names: revalidate every time (an ETag makes that a 304).
  'cache-control': 'no-cache',
};

const ASSET = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.(js|css|svg|png|ico|txt)$/;

/**
 * Serves the built console at /console/ (`index.html`, `assets/<file>`); `/` and `/console` redirect
 * there. The pages route by the URL's fragment, so no other path is needed. Without a build, every console
 * path answers 503 ConsoleNotBuilt, checked on each request (a build made later is served at once).
 */
export async function registerConsoleStatic(app: FastifyInstance, distDir: string): Promise<void> {
  await app.register(fastifyStatic, { root: distDir, serve: false, suppressWarning: true });
  // Static files cost nothing worth limiting; the API calls the pages make are limited as any.
  const config = { rateLimit: false as const };
  app.get('/', { config }, (_request, reply) => reply.redirect(CONSOLE_PATH));
  app.get('/console', { config }, (_request, reply) => reply.redirect(CONSOLE_PATH));
  app.get(CONSOLE_PATH, { config }, (_request, reply) => send(reply, distDir, 'index.html'));
  app.get(`${CONSOLE_PATH}assets/:file`, { config }, (request: FastifyRequest, reply) => {
    const file = (request.params as { file: string }).file;
    if (!ASSET.test(file) || !existsSync(join(distDir, 'assets', file)))
      return sendError(
        reply.headers(CONSOLE_HEADERS),
        new SynclineError('RouteNotFound', `the console has no asset ${file.slice(0, 64)}`),
      );
    return send(reply, distDir, `assets/${file}`);
  });
}

function send(reply: FastifyReply, distDir: string, file: string): FastifyReply {
  void reply.headers(CONSOLE_HEADERS);
  if (!existsSync(join(distDir, 'index.html')))
    return sendError(
      reply,
      new SynclineError(
        'ConsoleNotBuilt',
        'the console is not built (operator/console/dist/ has no index.html): run npm run build:console',
      ),
    );
  return reply.sendFile(file, distDir);
}
