// The pages live in the URL's fragment (#/ns/<ns>/syncs/<name>/runs/<id>?key=...): the server serves one
// page whatever the path, under any prefix a proxy adds, and no path reaches the server's logs.

export type Route =
  | { page: 'syncs'; namespace?: string }
  | { page: 'sync'; namespace: string; name: string }
  | { page: 'run'; namespace: string; name: string; id: string; key?: string };

const dec = decodeURIComponent;
const enc = encodeURIComponent;

export function parseRoute(hash: string): Route {
  const [path = '', query = ''] = hash.replace(/^#/, '').split('?');
  const params = new URLSearchParams(query);
  const parts = path.split('/').filter(Boolean);
  try {
    if (parts.length === 4 && parts[0] === 'ns' && parts[2] === 'syncs')
      return { page: 'sync', namespace: dec(parts[1]!), name: dec(parts[3]!) };
    if (parts.length === 6 && parts[0] === 'ns' && parts[2] === 'syncs' && parts[4] === 'runs') {
      const key = params.get('key');
      return {
        page: 'run',
        namespace: dec(parts[1]!),
        name: dec(parts[3]!),
        id: dec(parts[5]!),
        ...(key ? { key } : {}),
      };
    }
  } catch {
    // a malformed escape: the list page
  }
  const namespace = params.get('namespace');
  return { page: 'syncs', ...(namespace ? { namespace } : {}) };
}

export function routeHref(route: Route): string {
  switch (route.page) {
    case 'syncs':
      return route.namespace ? `#/?namespace=${enc(route.namespace)}` : '#/';
    case 'sync':
      return `#/ns/${enc(route.namespace)}/syncs/${enc(route.name)}`;
    case 'run': {
      const base = `#/ns/${enc(route.namespace)}/syncs/${enc(route.name)}/runs/${enc(route.id)}`;
      return route.key ? `${base}?key=${enc(route.key)}` : base;
    }
  }
}
