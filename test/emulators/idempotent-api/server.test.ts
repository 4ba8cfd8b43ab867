// The idempotent API emulator itself: replays, key misuse, faults after the commit, Retry-After and
// exact numbers, driven with plain fetch.
import { isLosslessNumber, parse } from 'lossless-json';
import { afterEach, describe, expect, it } from 'vitest';
import { startIdempotentApi, type FaultRates, type IdempotentApi } from './server.ts';

let api: IdempotentApi | undefined;

afterEach(async () => {
  await api?.close();
  api = undefined;
});

async function start(faults: Partial<FaultRates> = {}, retryAfterSeconds = 0): Promise<IdempotentApi> {
  api = await startIdempotentApi({ seed: 7, faults, retryAfterSeconds });
  return api;
}

function put(base: IdempotentApi, id: string, body: string, key?: string): Promise<Response> {
  return fetch(`${base.url}/records/${encodeURIComponent(id)}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
    body,
  });
}

describe('the idempotency layer', () => {
  it('replays the recorded response of a repeated key without applying again', async () => {
    const base = await start();
    const first = await put(base, '1', '{"v":"a"}', 'k1');
    const firstBody = await first.text();
    expect(first.status).toBe(200);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const again = await put(base, '1', '{"v":"a"}', 'k1');
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await again.text()).toBe(firstBody);
    expect(base.stats()).toMatchObject({ applied: 1, replays: 1, violations: 0 });
    // A replay does not undo a later write of another key.
    await put(base, '1', '{"v":"b"}', 'k2');
    await put(base, '1', '{"v":"a"}', 'k1');
    expect(base.records().get('1')).toBe('{"v":"b"}');
  });

  it('refuses a key reused with other parameters, and counts it as a violation', async () => {
    const base = await start();
    await put(base, '1', '{"v":"a"}', 'k1');
    const misuse = await put(base, '1', '{"v":"changed"}', 'k1');
    expect(misuse.status).toBe(400);
    const body = (await misuse.json()) as { error: { type: string; message: string } };
    expect(body.error.type).toBe('idempotency_error');
    expect(body.error.message).toMatch(
      /^Keys for idempotent requests can only be used with the same parameters/,
    );
    expect(base.records().get('1')).toBe('{"v":"a"}');
    expect(base.stats()).toMatchObject({ applied: 1, violations: 1 });
    expect(base.stats().violationDetails[0]).toMatch(/k1/);
  });

  it('deletes records, answers 404 for a missing one, and replays a delete', async () => {
    const base = await start();
    await put(base, '9', '{}', 'a');
    const del = () =>
      fetch(`${base.url}/records/9`, { method: 'DELETE', headers: { 'idempotency-key': 'd' } });
    expect((await del()).status).toBe(200);
    expect(base.records().has('9')).toBe(false);
    const replay = await del();
    expect(replay.status).toBe(200);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    const missing = await fetch(`${base.url}/records/9`, {
      method: 'DELETE',
      headers: { 'idempotency-key': 'e' },
    });
    expect(missing.status).toBe(404);
    expect(base.stats()).toMatchObject({ applied: 2, replays: 1, violations: 0 });
  });
});

describe('faults', () => {
  it('applies a write answered with a 500 once; its retry is replayed as a success', async () => {
    const base = await start({ appliedThen500: 1 });
    const first = await put(base, '5', '{"v":1}', 'k');
    expect(first.status).toBe(500);
    expect(base.records().get('5')).toBe('{"v":1}');
    base.setFaults({});
    const retry = await put(base, '5', '{"v":1}', 'k');
    expect(retry.status).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(base.stats()).toMatchObject({ applied: 1, replays: 1, violations: 0 });
    expect(base.stats().faults.appliedThen500).toBe(1);
  });

  it('applies a write whose connection is reset once', async () => {
    const base = await start({ appliedThenReset: 1 });
    await expect(put(base, '6', '{"v":1}', 'k')).rejects.toThrow();
    expect(base.records().get('6')).toBe('{"v":1}');
    base.setFaults({});
    expect((await put(base, '6', '{"v":1}', 'k')).headers.get('idempotent-replayed')).toBe('true');
    expect(base.stats()).toMatchObject({ applied: 1, replays: 1 });
  });

  it('answers 429 with Retry-After and 5xx without applying or recording anything', async () => {
    const base = await start({ rateLimited: 1 }, 1);
    const limited = await put(base, '1', '{}', 'k');
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('1');
    base.setFaults({ unavailable: 1 });
    expect([500, 503]).toContain((await put(base, '1', '{}', 'k')).status);
    base.setFaults({});
    const applied = await put(base, '1', '{}', 'k');
    expect(applied.headers.get('idempotent-replayed')).toBeNull();
    expect(base.stats()).toMatchObject({ applied: 1, replays: 0 });
    expect(base.stats().faults).toMatchObject({ rateLimited: 1, unavailable: 1 });
  });

  it('delays slow answers', async () => {
    const base = await start({ slow: 1 });
    const started = Date.now();
    await put(base, '1', '{}', 'k');
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
  });
});

it('keeps big integers, long decimals and -0 exactly', async () => {
  const base = await start();
  const body =
    '{"id":9007199254740993,"n":1234567890123456789012345678.1234567891,"z":-0,"j":{"b":123456789012345678901234567890}}';
  expect((await put(base, '9007199254740993', body, 'k')).status).toBe(200);
  const raw = base.records().get('9007199254740993') as string;
  expect(raw).toBe(body);
  const value = parse(raw) as Record<string, unknown>;
  expect(isLosslessNumber(value['id']) && String(value['id'])).toBe('9007199254740993');
  expect(String(value['n'])).toBe('1234567890123456789012345678.1234567891');
  expect(String(value['z'])).toBe('-0');
  const bad = await put(base, '2', '{"v":', 'k2');
  expect(bad.status).toBe(400);
  expect(base.stats().applied).toBe(1);
});
