import { useState } from 'preact/hooks';
import { api, type ApiError, type ConsoleSyncList } from '../api.ts';
import { count, dateTime, relative } from '../format.ts';
import { routeHref } from '../route.ts';
import { Badge, Empty, ErrorBox, Section, useLoad } from '../ui.tsx';

type Item = ConsoleSyncList['items'][number];

export interface SyncsProps {
  namespace?: string;
  onUnauthorized: (error: ApiError) => void;
}

/** Every Sync the caller may list, filtered by namespace (kept in the URL) and by name. */
export function Syncs({ namespace, onUnauthorized }: SyncsProps) {
  const list = useLoad(() => api.syncs(), [], onUnauthorized);
  const [text, setText] = useState('');
  const items = (list.data?.items ?? []).filter(
    (i) => (!namespace || i.namespace === namespace) && i.name.includes(text.trim()),
  );
  const filters = (
    <div class="filters">
      <label>
        Namespace{' '}
        <select
          aria-label="Namespace"
          value={namespace ?? ''}
          onChange={(e) => {
            const value = (e.target as HTMLSelectElement).value;
            location.hash = routeHref({ page: 'syncs', ...(value ? { namespace: value } : {}) });
          }}
        >
          <option value="">all namespaces</option>
          {(list.data?.namespaces ?? []).map((ns) => (
            <option value={ns} key={ns}>
              {ns}
            </option>
          ))}
        </select>
      </label>
      <input
        type="search"
        aria-label="Filter by name"
        placeholder="Filter by name"
        value={text}
        onInput={(e) => setText((e.target as HTMLInputElement).value)}
      />
      <button type="button" class="secondary" onClick={list.reload} disabled={list.loading}>
        Refresh
      </button>
    </div>
  );
  return (
    <Section title="Syncs" aside={filters}>
      {list.error && <ErrorBox error={list.error} />}
      {list.data && items.length === 0 && (
        <Empty>
          {list.data.items.length === 0
            ? 'No Syncs you may see: your user needs list on syncs.syncline.io in a namespace.'
            : 'No Sync matches the filter.'}
        </Empty>
      )}
      {items.length > 0 && <SyncTable items={items} />}
    </Section>
  );
}

function SyncTable({ items }: { items: Item[] }) {
  return (
    <table class="grid" aria-label="Syncs">
      <thead>
        <tr>
          <th>Namespace</th>
          <th>Name</th>
          <th>Health</th>
          <th>Last result</th>
          <th class="num">Delivered</th>
          <th class="num">Failed</th>
          <th>Schedule</th>
          <th>Next run</th>
        </tr>
      </thead>
      <tbody>
        {items.map((item) => (
          <tr key={`${item.namespace}/${item.name}`}>
            <td>{item.namespace}</td>
            <td>
              <a href={routeHref({ page: 'sync', namespace: item.namespace, name: item.name })}>
                {item.name}
              </a>
            </td>
            <td title={item.ready.message}>
              <Badge value={item.ready.status} label={item.ready.reason ?? `Ready ${item.ready.status}`} />
            </td>
            <td title={dateTime(item.lastRun?.finishedAt)}>
              {item.lastRun ? (
                <>
                  <Badge value={item.lastRun.result} label={item.lastRun.result ?? 'Running'} />{' '}
                  <span class="muted">{relative(item.lastRun.finishedAt)}</span>
                </>
              ) : (
                <span class="muted">never run</span>
              )}
            </td>
            <td class="num">{count(item.lastRun?.counts?.delivered)}</td>
            <td class="num">{count(item.lastRun?.counts?.failed)}</td>
            <td>
              {item.paused ? (
                <Badge value="Paused" />
              ) : (
                (item.schedule ?? <span class="muted">on request</span>)
              )}
            </td>
            <td title={dateTime(item.nextRunAt)}>{item.paused ? '–' : relative(item.nextRunAt)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
