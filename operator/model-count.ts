// The size preview of a segment Model (status.segment): counted on its Source by a runner Job
// (`syncline count-segment`) whenever its compiled SQL changes, since the operator never queries a Source;
// a finished run of a Sync of the segment also refreshes it (sync-announce.ts).
import { createHash } from 'node:crypto';
import { API_VERSION, type Model, type ModelStatus } from '../crds/index.ts';
import { segmentCountPlan } from '../core/plan.ts';
import type { CompiledSegment } from '../core/segments/index.ts';
import type { ReconcileContext } from './context.ts';
import { buildSegmentCountJob, COMPONENT_LABEL, MODEL_LABEL, segmentCountJobName } from './jobs.ts';
import { jobOutcome } from './results.ts';

/** How often a running count is looked at again. */
const POLL_MS = 5_000;

/** The hash a count is of: of the compiled SQL. */
export function definitionHashOf(sql: string): string {
  return createHash('sha256').update(sql).digest('hex').slice(0, 16);
}

export interface CountStep {
  /** The preview to write, once a count of this definition finished. */
  segment?: ModelStatus['segment'];
  requeueAfterMs?: number;
}

/** Start, follow or read the count of the segment's current definition. */
export async function countSegment(
  ctx: ReconcileContext,
  model: Model,
  compiled: CompiledSegment,
): Promise<CountStep> {
  const hash = definitionHashOf(compiled.sql);
  if (model.status?.segment?.definitionHash === hash) return {};
  const namespace = model.metadata.namespace ?? 'default';
  const source = ctx.store.source(namespace, model.spec.sourceRef.name);
  if (!source) return {};
  const name = segmentCountJobName(model, hash);
  const job = ctx.store
    .jobs(namespace, { [COMPONENT_LABEL]: 'count-segment', [MODEL_LABEL]: model.metadata.name })
    .find((j) => j.metadata?.name === name);
  if (!job) {
    const plan = segmentCountPlan.parse({
      apiVersion: API_VERSION,
      kind: 'SegmentCountPlan',
      namespace,
      model: model.metadata.name,
      source: { name: source.metadata.name, spec: source.spec },
      sql: compiled.sql,
      definitionHash: hash,
    });
    await ctx.cluster.createJob(buildSegmentCountJob(model, plan, ctx.config));
    return { requeueAfterMs: POLL_MS };
  }
  const outcome = jobOutcome(job, ctx.store.podsOfJob(namespace, name));
  if (outcome.state === 'active') return { requeueAfterMs: POLL_MS };
  const said = countResult(outcome.terminationMessage);
  if (outcome.succeeded && said?.members !== undefined && said.definitionHash === hash) {
    return { segment: { members: said.members, countedAt: outcome.finishedAt, definitionHash: hash } };
  }
  // The failed Job stays (until its TTL) so that this definition is not counted again and again.
  ctx.events.warning(
    model,
    'SegmentCountFailed',
    `could not count the segment's members for its size preview (${said?.reason ?? outcome.reason ?? 'RunnerFailed'}: ` +
      `${said?.message ?? outcome.message ?? 'the count Job failed'}); a run of a Sync of it counts them too`,
  );
  return {};
}

function countResult(
  text: string | undefined,
): { members?: number; definitionHash?: string; reason?: string; message?: string } | undefined {
  if (!text) return undefined;
  try {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    return {
      ...(typeof parsed['members'] === 'number' ? { members: parsed['members'] } : {}),
      ...(typeof parsed['definitionHash'] === 'string' ? { definitionHash: parsed['definitionHash'] } : {}),
      ...(typeof parsed['reason'] === 'string' ? { reason: parsed['reason'] } : {}),
      ...(typeof parsed['message'] === 'string' ? { message: parsed['message'] } : {}),
    };
  } catch (error) {
    // FallbackToLogsOnError: the log tail, not our JSON.
    return { reason: 'RunnerFailed', message: `${String(error)}: ${text.slice(0, 512)}` };
  }
}
