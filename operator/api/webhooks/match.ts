import { syncTrigger, type Sync, type SyncTrigger } from '../../../crds/index.ts';
import { normalId, type WebhookEvent } from './events.ts';

/** The Syncs an event starts, and those whose triggers name its job or connector but not this delivery. */
export interface Matching {
  matched: Sync[];
  /** Why each of the others does not start: another outcome, another webhook. */
  near: { sync: Sync; why: string }[];
}

/**
 * The Syncs whose `spec.schedule.triggers` match a verified event on a webhook: the same job (dbt Cloud:
 * account and job) or connector (Fivetran), a result the trigger's `results` lists, and the webhook, if the
 * trigger names one. Triggers are read as the schema reads them (defaults applied); an invalid one matches
 * nothing. Syncs being deleted are left out.
 */
export function matchSyncs(syncs: readonly Sync[], event: WebhookEvent, webhook: string): Matching {
  const matching: Matching = { matched: [], near: [] };
  for (const sync of syncs) {
    if (sync.metadata.deletionTimestamp) continue;
    const verdicts = triggersOf(sync).map((t) => verdict(t, event, webhook));
    if (verdicts.includes('match')) matching.matched.push(sync);
    else {
      const why = verdicts.find((v): v is { why: string } => typeof v === 'object');
      if (why) matching.near.push({ sync, why: why.why });
    }
  }
  return matching;
}

function triggersOf(sync: Sync): SyncTrigger[] {
  const raw: unknown[] = (sync.spec?.schedule?.triggers as unknown[] | undefined) ?? [];
  return raw.flatMap((t) => {
    const parsed = syncTrigger.safeParse(t);
    return parsed.success ? [parsed.data] : [];
  });
}

type Verdict = 'match' | 'other' | { why: string };

function verdict(trigger: SyncTrigger, event: WebhookEvent, webhook: string): Verdict {
  const target = event.type === 'dbtCloud' ? trigger.dbtCloud : trigger.fivetran;
  if (!target) return 'other';
  const same =
    event.type === 'dbtCloud'
      ? !!trigger.dbtCloud &&
        normalId(trigger.dbtCloud.accountId) === event.accountId &&
        normalId(trigger.dbtCloud.jobId) === event.jobId
      : trigger.fivetran?.connectorId === event.connectorId;
  if (!same) return 'other';
  if (target.webhook !== undefined && target.webhook !== webhook)
    return { why: `its trigger takes deliveries of webhook ${target.webhook} only` };
  const results: readonly string[] = target.results;
  if (event.outcome === undefined || !results.includes(event.outcome))
    return { why: `its trigger runs on ${results.join(', ')} only` };
  return 'match';
}

/** Why no Sync starts, in one message: nothing names the job, or what the near ones wait for. */
export function noMatchMessage(event: WebhookEvent, matching: Matching): string {
  if (matching.near.length === 0)
    return `no Sync has a trigger for ${event.subject} (spec.schedule.triggers)`;
  const shown = matching.near
    .slice(0, 5)
    .map(({ sync, why }) => `${sync.metadata.namespace}/${sync.metadata.name}: ${why}`)
    .join('; ');
  const more = matching.near.length > 5 ? `; and ${matching.near.length - 5} more` : '';
  return `the ${event.type === 'dbtCloud' ? 'run' : 'sync'} of ${event.subject} ${event.outcome ?? 'ended'}, which starts no Sync: ${shown}${more}`;
}
