// `syncline count-segment`: the operator starts it as a Job when a segment Model's compiled SQL changed,
// for the size preview in its status (Model.status.segment). The count runs on the Source through its
// connector, as a one-row model, so every dialect's read-only rules and credentials apply unchanged.
import type { Logger as PinoLogger } from 'pino';
import { sourceConnector } from '../connectors/registry.ts';
import { describeError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import { segmentCountPlan, type SegmentCountPlan } from '../core/plan.ts';
import { secretResolver } from '../core/secrets.ts';
import { modelSpec } from '../crds/index.ts';
import { openEmbeddedDuck, queryOne } from './duck.ts';
import { abortOnSignals, readPlan, writeTermination, type JobOptions } from './job.ts';

export interface CountResult {
  ok: boolean;
  reason: string;
  message: string;
  members?: number;
  definitionHash?: string;
}

/** The column of the one-row model the count is read as. */
const MEMBERS = 'segment_members';

/** Count one segment's rows; writes {ok, reason, message, members, definitionHash}. */
export async function runSegmentCount(options: JobOptions = {}): Promise<number> {
  const env = options.env ?? process.env;
  const log = options.log ?? createLogger({ name: 'syncline-runner', fd: 1 });
  let result: CountResult;
  try {
    const plan = readPlan(segmentCountPlan, 'SYNCLINE_COUNT_PLAN', options);
    const members = await countMembers(plan, env, log);
    result = {
      ok: true,
      reason: 'SegmentCounted',
      message: `segment Model ${plan.namespace}/${plan.model} has ${members} member(s)`,
      members,
      definitionHash: plan.definitionHash,
    };
  } catch (error) {
    const { reason, message } = describeError(error, 'SourceQueryFailed');
    result = { ok: false, reason, message };
  }
  log.info(result, 'segment count finished');
  writeTermination(env, JSON.stringify(result), log);
  return result.ok ? 0 : 1;
}

async function countMembers(
  plan: SegmentCountPlan,
  env: NodeJS.ProcessEnv,
  log: PinoLogger,
): Promise<number> {
  const connector = await sourceConnector(plan.source.spec.type);
  const signals = abortOnSignals(log);
  const duck = await openEmbeddedDuck(env['TMPDIR'] ? { tmpDir: env['TMPDIR'] } : {});
  try {
    const model = modelSpec.parse({
      sourceRef: { name: plan.source.name },
      query: `SELECT count(*) AS ${MEMBERS} FROM (\n${plan.sql}\n) segment_rows`,
      primaryKey: MEMBERS,
    });
    await connector.stage({
      secrets: secretResolver(env),
      log,
      signal: signals.signal,
      tmpDir: duck.dir,
      source: plan.source.spec,
      model,
      duck: duck.connection,
      table: 'counted',
      labels: {
        namespace: plan.namespace,
        sync: '',
        runId: `count-${plan.definitionHash}`,
        model: `${plan.namespace}/${plan.model}`,
      },
    });
    const row = await queryOne(duck.connection, `SELECT CAST(${MEMBERS} AS BIGINT) AS n FROM counted`);
    return Number(row?.['n'] ?? 0);
  } finally {
    duck.close();
    signals.dispose();
  }
}
