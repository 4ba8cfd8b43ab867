import { useState } from 'preact/hooks';

export interface SignInProps {
  /** Checks a token with the API; resolves with an error message when it is not accepted. */
  onToken: (token: string) => Promise<string | undefined>;
  error?: string;
}

/**
 * Asks for a Kubernetes bearer token. It is kept in this tab's sessionStorage and sent only as an
 * Authorization header, never in a URL (the form posts nothing: the page handles it).
 */
export function SignIn({ onToken, error }: SignInProps) {
  const [token, setToken] = useState('');
  const [problem, setProblem] = useState(error);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    const value = token.trim();
    if (!value) return setProblem('Paste a token first.');
    setBusy(true);
    const refused = await onToken(value);
    setBusy(false);
    if (refused) setProblem(refused);
  };
  return (
    <main class="signin">
      <form class="card" method="post" onSubmit={submit} autocomplete="off">
        <h1>Sign in to Syncline</h1>
        <p>
          The console acts with your own Kubernetes identity: you see the Syncs your RBAC lets you list, and
          “Run now” needs the <code>trigger</code> verb on syncs.syncline.io.
        </p>
        <label for="token">Kubernetes token</label>
        <textarea
          id="token"
          name="token"
          rows={4}
          spellcheck={false}
          autocomplete="off"
          placeholder="eyJhbGciOi…"
          value={token}
          onInput={(e) => setToken((e.target as HTMLTextAreaElement).value)}
        />
        {problem && (
          <div class="error" role="alert">
            {problem}
          </div>
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
        <p class="note">
          Get a token for a ServiceAccount with{' '}
          <code>kubectl create token &lt;service-account&gt; -n &lt;namespace&gt; --duration=1h</code>. The
          token stays in this browser tab (sessionStorage) until you sign out or close it. Behind the
          cluster’s sign-in proxy this page does not appear: the proxy’s token is used.
        </p>
      </form>
    </main>
  );
}
