import { describe, expect, it } from 'vitest';
import { applyConditionSet, findCondition, readyTransition, setCondition } from './conditions.ts';
import { statusPatch } from './cluster.ts';

const t0 = new Date('2025-01-01T00:00:00Z');
const t1 = new Date('2025-01-01T00:05:00Z');

describe('conditions', () => {
  it('sets lastTransitionTime only when the status changes', () => {
    const a = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'A', message: 'a' }, 1, t0);
    const b = setCondition(a, { type: 'Ready', status: 'False', reason: 'B', message: 'b' }, 2, t1);
    expect(findCondition(b, 'Ready')).toMatchObject({
      reason: 'B',
      observedGeneration: 2,
      lastTransitionTime: t0.toISOString(),
    });
    const c = setCondition(b, { type: 'Ready', status: 'True', reason: 'C', message: 'c' }, 2, t1);
    expect(findCondition(c, 'Ready')?.lastTransitionTime).toBe(t1.toISOString());
  });

  it('keeps Reconciling and Stalled only while they are True (kstatus)', () => {
    const stalled = applyConditionSet(
      undefined,
      { ready: { status: 'False', reason: 'X', message: 'x' }, stalled: { reason: 'X', message: 'x' } },
      1,
      t0,
    );
    expect(stalled.map((c) => c.type).sort()).toEqual(['Ready', 'Stalled']);
    const cleared = applyConditionSet(
      stalled,
      { ready: { status: 'True', reason: 'Ok', message: 'ok' } },
      1,
      t1,
    );
    expect(cleared.map((c) => c.type)).toEqual(['Ready']);
  });

  it('reports Ready transitions of status or reason only', () => {
    const a = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'A', message: 'a' }, 1, t0);
    const sameReason = setCondition(
      a,
      { type: 'Ready', status: 'False', reason: 'A', message: 'other text' },
      1,
      t1,
    );
    expect(readyTransition(a, sameReason)).toBeUndefined();
    const newReason = setCondition(a, { type: 'Ready', status: 'False', reason: 'B', message: 'b' }, 1, t1);
    expect(readyTransition(a, newReason)?.reason).toBe('B');
  });

  it('computes no status patch when nothing changed, and nulls for removed keys', () => {
    const status = {
      conditions: setCondition(
        undefined,
        { type: 'Ready', status: 'True', reason: 'A', message: 'a' },
        1,
        t0,
      ),
      nextRunAt: 'x',
    };
    const same = {
      ...status,
      conditions: setCondition(
        status.conditions,
        { type: 'Ready', status: 'True', reason: 'A', message: 'a' },
        1,
        t1,
      ),
    };
    expect(statusPatch(status, same)).toBeUndefined();
    expect(statusPatch(status, { conditions: status.conditions, activeRun: undefined })).toEqual({
      nextRunAt: null,
    });
  });
});
