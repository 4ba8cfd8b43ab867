// The console's shell: who is signed in (a pasted token, or the auth proxy's header), and which page.
import { render } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { api, ApiError, storedToken, storeToken } from './api.ts';
import { Run } from './pages/Run.tsx';
import { SignIn } from './pages/SignIn.tsx';
import { Sync } from './pages/Sync.tsx';
import { Syncs } from './pages/Syncs.tsx';
import { parseRoute, routeHref, type Route } from './route.ts';

type Session =
  | { state: 'checking' }
  | { state: 'signedOut'; error?: string }
  | { state: 'signedIn'; via: 'token' | 'proxy' };

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const update = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', update);
    return () => removeEventListener('hashchange', update);
  }, []);
  return route;
}

/**
 * Signed in when /api/v1/syncs answers: with the token of this tab's sessionStorage, or with none when an
 * auth proxy in front of the operator adds the Authorization header itself.
 */
async function checkSession(): Promise<Session> {
  const token = storedToken();
  try {
    await api.syncs(token);
    return { state: 'signedIn', via: token ? 'token' : 'proxy' };
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      if (!token) return { state: 'signedOut' };
      storeToken(undefined);
      return { state: 'signedOut', error: `Your token is no longer accepted: ${error.message}` };
    }
    return { state: 'signedOut', error: (error as Error).message };
  }
}

function App() {
  const [session, setSession] = useState<Session>({ state: 'checking' });
  const route = useRoute();
  useEffect(() => {
    void checkSession().then(setSession);
  }, []);
  const onUnauthorized = useCallback((error: ApiError) => {
    storeToken(undefined);
    setSession({ state: 'signedOut', error: `Signed out: ${error.message}` });
  }, []);
  const onToken = async (token: string) => {
    try {
      await api.syncs(token);
      storeToken(token);
      setSession({ state: 'signedIn', via: 'token' });
      return undefined;
    } catch (error) {
      return error instanceof ApiError && error.status === 401
        ? `Not signed in: ${error.message}`
        : `Could not sign in: ${(error as Error).message}`;
    }
  };
  if (session.state === 'checking') return <p class="empty">Connecting to the operator…</p>;
  if (session.state === 'signedOut')
    return <SignIn onToken={onToken} {...(session.error ? { error: session.error } : {})} />;
  return (
    <>
      <header class="top">
        <a class="brand" href={routeHref({ page: 'syncs' })}>
          Syncline
        </a>
        <span class="muted">
          {session.via === 'token'
            ? 'signed in with a Kubernetes token'
            : 'signed in through the cluster’s proxy'}
        </span>
        {session.via === 'token' && (
          <button
            type="button"
            class="secondary"
            onClick={() => {
              storeToken(undefined);
              setSession({ state: 'signedOut' });
            }}
          >
            Sign out
          </button>
        )}
      </header>
      <main>
        <Page route={route} onUnauthorized={onUnauthorized} />
      </main>
    </>
  );
}

function Page({ route, onUnauthorized }: { route: Route; onUnauthorized: (error: ApiError) => void }) {
  switch (route.page) {
    case 'syncs':
      return (
        <Syncs {...(route.namespace ? { namespace: route.namespace } : {})} onUnauthorized={onUnauthorized} />
      );
    case 'sync':
      return <Sync namespace={route.namespace} name={route.name} onUnauthorized={onUnauthorized} />;
    case 'run':
      return (
        <Run
          namespace={route.namespace}
          name={route.name}
          id={route.id}
          {...(route.key ? { searchKey: route.key } : {})}
          onUnauthorized={onUnauthorized}
        />
      );
  }
}

render(<App />, document.getElementById('app')!);
