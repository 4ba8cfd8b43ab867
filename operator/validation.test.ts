import { SynclineError } from '../core/errors.ts';
import { describe, expect, it } from 'vitest';
import type { Sync } from '../crds/index.ts';
import { finalizerStep } from './finalizer.ts';
import { modelConditions } from './model.ts';
import { syncConditions } from './sync.ts';
import { validateModel, validateSync, type SyncReferences } from './validation.ts';
import {
  destination,
  httpCapabilities,
  model,
  postgresCapabilities,
  saasCapabilities,
  source,
  sync,
} from './testdata/fixtures.ts';

const refs = (over: Partial<SyncReferences> = {}): SyncReferences => ({
  model: model(),
  destination: destination(),
  dependencies: [],
  capabilities: httpCapabilities,
  lookupSync: () => undefined,
  ...over,
});

describe('validation beyond the schema', () => {
  it('accepts a valid Sync', () => {
    expect(validateSync(sync(), refs())).toEqual({ ok: true });
  });

  it.each([
    ['ModelNotFound', refs({ model: undefined }), true],
    ['DestinationNotFound', refs({ destination: undefined }), true],
    ['DependencyNotFound', refs({ dependencies: [{ name: 'other' }] }), true],
    ['UnsupportedMode', refs({ capabilities: { ...postgresCapabilities, modes: ['insert'] } }), true],
    [
      'UnknownColumn',
      refs({
        model: model({ conditions: model().status!.conditions, columns: [{ name: 'id', type: 'INTEGER' }] }),
      }),
      true,
    ],
    ['ModelNotReady', refs({ model: model({ conditions: [] }) }), false],
    ['DestinationNotReady', refs({ destination: destination({}) }), false],
    [
      'UnsupportedDestination',
      refs({ capabilities: undefined, capabilitiesError: new Error('no connector') }),
      true,
    ],
    [
      'CapabilityProbeFailed',
      refs({
        capabilities: undefined,
        capabilitiesError: new SynclineError('CapabilityProbeFailed', 'the probe timed out', {
          retryable: true,
        }),
      }),
      false,
    ],
  ])('%s', (reason, r, stalled) => {
    const verdict = validateSync(sync(), r);
    expect(verdict).toMatchObject({ ok: false, reason, stalled });
    if (!verdict.ok) expect(verdict.message.length).toBeGreaterThan(20);
  });

  it('names the modes a destination does support', () => {
    const verdict = validateSync(sync({ mode: 'update' }), refs({ capabilities: postgresCapabilities }));
    expect(verdict).toMatchObject({ reason: 'UnsupportedMode' });
    if (!verdict.ok) expect(verdict.message).toContain('upsert, insert, all');
  });

  it('needs a target table where the destination asks for one', () => {
    expect(
      validateSync(sync({ mode: 'upsert' }), refs({ capabilities: postgresCapabilities })),
    ).toMatchObject({ reason: 'MissingTarget' });
    expect(
      validateSync(
        sync({ mode: 'upsert', target: { table: 't' } }),
        refs({ capabilities: postgresCapabilities }),
      ),
    ).toEqual({ ok: true });
  });

  it('needs a match field where the mode matches rows by one, before any discovery', () => {
    const verdict = validateSync(
      sync({ mode: 'update', target: { object: 'Contact' } }),
      refs({ capabilities: saasCapabilities }),
    );
    expect(verdict).toMatchObject({ ok: false, stalled: true, reason: 'MatchFieldRequired' });
    if (!verdict.ok) {
      expect(verdict.message).toContain(
        'Sync team/customers-to-crm: mode "update" matches rows to records of the http destination',
      );
      expect(verdict.message).toContain('set it to an External ID field of object "Contact"');
    }
    expect(
      validateSync(
        sync({ mode: 'insert', target: { object: 'Contact' } }),
        refs({ capabilities: saasCapabilities }),
      ),
    ).toEqual({ ok: true });
  });

  it('finds dependency cycles', () => {
    const a = sync({ dependsOn: [{ name: 'b' }] }, { name: 'a' });
    const b = sync({ dependsOn: [{ name: 'a' }] }, { name: 'b' });
    const lookup = (n: string): Sync | undefined => ({ a, b })[n];
    expect(
      validateSync(a, refs({ dependencies: [{ name: 'b', sync: b }], lookupSync: lookup })),
    ).toMatchObject({ reason: 'DependencyCycle' });
  });

  it('finds cycles through afterSyncs triggers too, and names that field', () => {
    const after = (names: string[]) => ({
      schedule: { triggers: [{ afterSyncs: { names, onFailure: 'continue' as const } }] },
    });
    const a = sync(after(['b']), { name: 'a' });
    const b = sync({ dependsOn: [{ name: 'c' }] }, { name: 'b' });
    const c = sync(after(['a']), { name: 'c' });
    const lookup = (n: string): Sync | undefined => ({ a, b, c })[n];
    const verdict = validateSync(a, refs({ dependencies: [{ name: 'b', sync: b }], lookupSync: lookup }));
    expect(verdict).toMatchObject({ reason: 'DependencyCycle', stalled: true });
    if (!verdict.ok)
      expect(verdict.message).toBe(
        'spec.schedule.triggers[].afterSyncs forms a cycle (a -> b -> c -> a): break it',
      );
    const open = sync(after(['b']), { name: 'a' });
    const lookupOpen = (n: string): Sync | undefined => ({ a: open, b: sync({}, { name: 'b' }) })[n];
    expect(
      validateSync(
        open,
        refs({ dependencies: [{ name: 'b', sync: sync({}, { name: 'b' }) }], lookupSync: lookupOpen }),
      ),
    ).toEqual({ ok: true });
  });

  it('rejects an unknown time zone', () => {
    expect(
      validateSync(sync({ schedule: { cron: '0 * * * *', timeZone: 'Nowhere/Land' } }), refs()),
    ).toMatchObject({ reason: 'InvalidTimeZone', stalled: true });
  });

  it('checks a Model against its Source', () => {
    expect(validateModel(model(), undefined)).toMatchObject({ reason: 'SourceNotFound', stalled: true });
    expect(validateModel(model(), source({}, {}))).toMatchObject({
      reason: 'SourceNotReady',
      stalled: false,
    });
    expect(modelConditions(model(), { store: { source: () => source() } as never }).ready.status).toBe(
      'True',
    );
  });
});

describe('Sync conditions', () => {
  const base = {
    verdict: { ok: true } as const,
    primaryKeyChanged: false,
    paused: false,
    active: undefined,
    lastRun: undefined,
    nextRunAt: undefined,
  };
  it('is Ready after a successful run, and not after a failed one', () => {
    expect(
      syncConditions({
        ...base,
        lastRun: {
          id: 'r',
          result: 'Succeeded',
          counts: { queried: 1, added: 1, changed: 0, removed: 0, delivered: 1, failed: 0, skipped: 0 },
        },
      }).ready,
    ).toMatchObject({ status: 'True', reason: 'Succeeded' });
    expect(
      syncConditions({
        ...base,
        lastRun: {
          id: 'r',
          result: 'Failed',
          reason: 'SourceQueryFailed',
          message: 'relation does not exist',
        },
      }).ready,
    ).toMatchObject({ status: 'False', reason: 'SourceQueryFailed' });
  });
  it('after a failed run: Reconciling when it is retried, Stalled when it needs a person, Ready=False for rejected rows', () => {
    const failed = (reason: string) => ({ id: 'r', result: 'Failed' as const, reason, message: 'm' });
    const transient = syncConditions({
      ...base,
      lastRun: failed('LeaseHeld'),
      retryAt: '2025-03-01T10:00:30.000Z',
    });
    expect(transient.reconciling).toEqual({
      reason: 'LeaseHeld',
      message: 'run r failed: m; retried at 2025-03-01T10:00:30.000Z',
    });
    expect(transient.stalled).toBeUndefined();
    const person = syncConditions({ ...base, lastRun: failed('SafetyRailTripped') });
    expect(person.stalled).toMatchObject({ reason: 'SafetyRailTripped' });
    expect(person.reconciling).toBeUndefined();
    const rows = syncConditions({ ...base, lastRun: failed('RowsRejected') });
    expect([rows.ready.status, rows.stalled, rows.reconciling]).toEqual(['False', undefined, undefined]);
  });
  it('is Reconciling during the first run and Stalled on a changed primary key', () => {
    expect(syncConditions({ ...base, active: { id: 'r' } })).toMatchObject({
      ready: { status: 'Unknown' },
      reconciling: { reason: 'FirstRunInProgress' },
    });
    const pk = syncConditions({
      ...base,
      primaryKeyChanged: true,
      lastRun: { id: 'r', result: 'Failed', reason: 'PrimaryKeyChanged' },
    });
    expect(pk.stalled?.reason).toBe('PrimaryKeyChanged');
    expect(pk.stalled?.message).toContain('syncline.io/resync-requested-at');
  });
  it('waits (Reconciling) on references that are not ready, stalls on missing ones', () => {
    expect(
      syncConditions({
        ...base,
        verdict: { ok: false, stalled: false, reason: 'ModelNotReady', message: 'm' },
      }),
    ).toMatchObject({ reconciling: { reason: 'ModelNotReady' } });
    expect(
      syncConditions({
        ...base,
        verdict: { ok: false, stalled: true, reason: 'ModelNotFound', message: 'm' },
      }),
    ).toMatchObject({ stalled: { reason: 'ModelNotFound' } });
  });
});

describe('finalizer', () => {
  const now = new Date('2025-03-01T10:10:00Z');
  it('releases at once with retain, cleans up with delete, and gives up after the timeout', () => {
    expect(
      finalizerStep({ policy: 'retain', deletionTimestamp: '2025-03-01T10:09:59Z', now, timeoutMs: 60_000 }),
    ).toBe('release');
    expect(
      finalizerStep({ policy: 'delete', deletionTimestamp: '2025-03-01T10:09:30Z', now, timeoutMs: 60_000 }),
    ).toBe('cleanup');
    expect(
      finalizerStep({ policy: 'delete', deletionTimestamp: '2025-03-01T10:09:00Z', now, timeoutMs: 60_000 }),
    ).toBe('abandon');
  });
});
