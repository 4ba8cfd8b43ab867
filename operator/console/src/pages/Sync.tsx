import { useEffect, useRef, useState } from 'preact/hooks';
import {
  api,
  ApiError,
  FINISHED_PHASES,
  idempotencyKey,
  type ConsoleSyncDetail,
  type RunView,
} from '../api.ts';
import { RunChart } from '../chart.tsx';
import { count, dateTime, duration, relative } from '../format.ts';
import { routeHref } from '../route.ts';
import { Badge, Empty, ErrorBox, Section, useLoad } from '../ui.tsx';

export interface SyncProps {
  namespace: string;
  name: string;
  onUnauthorized: (error: ApiError) => void;
}

/** One Sync: its state, conditions, a chart and table of its runs, and "Run now" for who may trigger it. */
export function Sync({ namespace, name, onUnauthorized }: SyncProps) {
  const sync = useLoad(() => api.sync(namespace, name), [namespace, name], onUnauthorized);
  const d = sync.data;
  return (
    <>
      <nav class="crumbs">
        <a href={routeHref({ page: 'syncs' })}>Syncs</a> /{' '}
        <a href={routeHref({ page: 'syncs', namespace })}>{namespace}</a> / {name}
      </nav>
      {sync.error && <ErrorBox error={sync.error} />}
      {d && (
        <>
          <Section
            title={`${d.namespace}/${d.name}`}
            aside={
              d.canTrigger ? (
                <RunNow sync={d} onFinished={sync.reload} onUnauthorized={onUnauthorized} />
              ) : undefined
            }
          >
            <Facts sync={d} />
          </Section>
          <Section title="Conditions">
            <Conditions sync={d} />
          </Section>
          <Section title="Rows and duration per run">
            <RunChart runs={d.runs} />
          </Section>
          <Section title="Run history">
            <History sync={d} />
          </Section>
        </>
      )}
    </>
  );
}

function Facts({ sync }: { sync: ConsoleSyncDetail }) {
  return (
    <dl class="facts">
      <dt>Health</dt>
      <dd>
        <Badge value={sync.ready.status} label={sync.ready.reason ?? `Ready ${sync.ready.status}`} />{' '}
        {sync.ready.message}
      </dd>
      <dt>Model → Destination</dt>
      <dd>
        {sync.model} → {sync.destination} ({sync.mode})
      </dd>
      <dt>Schedule</dt>
      <dd>{sync.paused ? 'paused' : (sync.schedule ?? 'on request only')}</dd>
      <dt>Next run</dt>
      <dd title={dateTime(sync.nextRunAt)}>{sync.paused ? '–' : relative(sync.nextRunAt)}</dd>
      <dt>Last success</dt>
      <dd title={dateTime(sync.lastSuccessfulRunAt)}>{relative(sync.lastSuccessfulRunAt)}</dd>
    </dl>
  );
}

function Conditions({ sync }: { sync: ConsoleSyncDetail }) {
  if (sync.conditions.length === 0) return <Empty>The operator has not reported on this Sync yet.</Empty>;
  return (
    <table class="grid" aria-label="Conditions">
      <thead>
        <tr>
          <th>Type</th>
          <th>Status</th>
          <th>Reason</th>
          <th>Message</th>
          <th>Since</th>
        </tr>
      </thead>
      <tbody>
        {sync.conditions.map((c) => (
          <tr key={c.type}>
            <td>{c.type}</td>
            <td>
              <Badge value={c.type === 'Ready' ? c.status : undefined} label={c.status} />
            </td>
            <td>{c.reason}</td>
            <td class="wrap">{c.message}</td>
            <td title={dateTime(c.lastTransitionTime)}>{relative(c.lastTransitionTime)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function History({ sync }: { sync: ConsoleSyncDetail }) {
  if (sync.runs.length === 0) return <Empty>No runs yet.</Empty>;
  return (
    <table class="grid" aria-label="Run history">
      <thead>
        <tr>
          <th>Run</th>
          <th>Trigger</th>
          <th>Phase</th>
          <th>Started</th>
          <th class="num">Duration</th>
          <th class="num">Queried</th>
          <th class="num">Added</th>
          <th class="num">Changed</th>
          <th class="num">Removed</th>
          <th class="num">Delivered</th>
          <th class="num">Failed</th>
          <th>Reason</th>
        </tr>
      </thead>
      <tbody>
        {sync.runs.map((run) => (
          <tr key={run.id}>
            <td>
              {FINISHED_PHASES.includes(run.phase) && run.phase !== 'Superseded' ? (
                <a href={routeHref({ page: 'run', namespace: sync.namespace, name: sync.name, id: run.id })}>
                  {run.id}
                </a>
              ) : (
                run.id
              )}
            </td>
            <td>{run.trigger}</td>
            <td>
              <Badge value={run.phase} />
            </td>
            <td title={dateTime(run.startedAt)}>{relative(run.startedAt)}</td>
            <td class="num">{duration(run.durationMs)}</td>
            <td class="num">{count(run.counts?.queried)}</td>
            <td class="num">{count(run.counts?.added)}</td>
            <td class="num">{count(run.counts?.changed)}</td>
            <td class="num">{count(run.counts?.removed)}</td>
            <td class="num">{count(run.counts?.delivered)}</td>
            <td class="num">{count(run.counts?.failed)}</td>
            <td title={run.message}>{run.reason}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

interface RunNowProps {
  sync: ConsoleSyncDetail;
  onFinished: () => void;
  onUnauthorized: (error: ApiError) => void;
}

/** Requests a run (one Idempotency-Key per click) and follows its phase with long polls until it ends. */
function RunNow({ sync, onFinished, onUnauthorized }: RunNowProps) {
  const [run, setRun] = useState<RunView>();
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const stop = useRef<AbortController | undefined>(undefined);
  useEffect(() => () => stop.current?.abort(), []);
  const start = async () => {
    stop.current?.abort();
    const controller = new AbortController();
    stop.current = controller;
    setBusy(true);
    setError(undefined);
    try {
      let view = await api.trigger(sync.namespace, sync.name, idempotencyKey());
      setRun(view);
      onFinished();
      while (!FINISHED_PHASES.includes(view.phase) && !controller.signal.aborted) {
        view = await api.run(sync.namespace, sync.name, view.id, 20, controller.signal);
        if (!controller.signal.aborted) setRun(view);
      }
      if (!controller.signal.aborted) onFinished();
    } catch (caught) {
      if (controller.signal.aborted) return;
      const apiError = caught instanceof ApiError ? caught : new ApiError(0, 'ConsoleError', String(caught));
      if (apiError.status === 401) onUnauthorized(apiError);
      setError(apiError);
    } finally {
      if (!controller.signal.aborted) setBusy(false);
    }
  };
  return (
    <div class="run-now">
      {run && (
        <span class="run-phase" aria-live="polite">
          Run {run.id}: <Badge value={run.phase} />
        </span>
      )}
      <button type="button" onClick={start} disabled={busy}>
        {busy ? 'Running…' : 'Run now'}
      </button>
      {error && <ErrorBox error={error} />}
    </div>
  );
}
