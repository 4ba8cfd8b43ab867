import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { BODY_LIMIT, redactedPrefix, filterRequestLog, RequestLog } from './requestlog.ts';

const dir = mkdtempSync(join(tmpdir(), 'syncline-reqlog-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('RequestLog', () => {
  it('writes gzip JSON lines, truncated and redacted, searchable by key', async () => {
    const file = join(dir, 'log.jsonl.gz');
    const log = new RequestLog(file, 'run-1', () => ['topsecret123']);
    log.record({
      operation: 'upsert',
      target: 'PUT https://api/x?key=topsecret123',
      keys: ['1', '2'],
      status: 200,
      latencyMs: 12,
      requestBody: 'x'.repeat(BODY_LIMIT + 50),
    });
    log.record({
      operation: 'delete',
      target: 'DELETE https://api/3',
      keys: ['3'],
      status: 500,
      latencyMs: 3,
      error: 'boom topsecret123',
    });
    await log.close();
    expect(log.entries).toBe(2);
    const text = gunzipSync(readFileSync(file)).toString('utf8');
    expect(text).not.toContain('topsecret123');
    const all = filterRequestLog(text);
    expect(all).toHaveLength(2);
    expect(all[0]?.runId).toBe('run-1');
    expect(all[0]?.target).toBe('PUT https://api/x?key=[REDACTED]');
    expect(all[0]?.requestBody?.length).toBeLessThan(BODY_LIMIT + 40);
    expect(all[0]?.requestBody).toContain('[50 more characters]');
    expect(filterRequestLog(text, '2').map((e) => e.operation)).toEqual(['upsert']);
    expect(filterRequestLog(text, '3')[0]?.error).toBe('boom [REDACTED]');
    expect(filterRequestLog(text, '9')).toEqual([]);
  });

  it('redacts a secret before cutting a body, so no part of it survives the cut', async () => {
    const file = join(dir, 'cut.jsonl.gz');
    const secret = 'cutsecret-0123456789';
    const log = new RequestLog(file, 'run-2', () => [secret]);
    const body = `${'x'.repeat(BODY_LIMIT - 10)}${secret}`;
    log.record({
      operation: 'upsert',
      target: 'POST https://api/x',
      keys: ['1'],
      latencyMs: 1,
      responseBody: body,
    });
    await log.close();
    const [entry] = filterRequestLog(gunzipSync(readFileSync(file)).toString('utf8'));
    expect(entry?.responseBody).not.toContain(secret.slice(0, 10));
  });

  it('redacts only what can reach the limit of a body of megabytes, and no secret that straddles the cut survives', () => {
    const secret = 'bulk-secret-ÿ-0123456789abcdef';
    const json = JSON.stringify(secret).slice(1, -1);
    for (const encoded of [secret, json, Buffer.from(secret).toString('base64')]) {
      const body = `${'a,b\n'.repeat((BODY_LIMIT - 8) / 4)}${encoded}${'c,d\n'.repeat(500_000)}${secret}`;
      const cut = redactedPrefix(body, [secret]);
      expect(cut.startsWith('a,b\n')).toBe(true);
      expect(cut).not.toContain(encoded.slice(0, 8));
      expect(cut).toContain(`… [${body.length - BODY_LIMIT} more characters]`);
      expect(cut.length).toBeLessThan(BODY_LIMIT + 40);
    }
    // A body within reach is redacted whole, as before.
    expect(redactedPrefix(`x ${secret} y`, [secret])).toBe('x [REDACTED] y');
  });
});
