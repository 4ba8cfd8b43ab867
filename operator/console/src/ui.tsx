// Small pieces the pages share: loading an API answer, status badges, error boxes.
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError } from './api.ts';
import { tone } from './format.ts';

export interface Loaded<T> {
  data?: T;
  error?: ApiError;
  loading: boolean;
  reload: () => void;
}

/**
 * The answer of `load`, again whenever `deps` change or reload() is called. A 401 goes to
 * `onUnauthorized` (the session is over); other errors are shown by the page.
 */
export function useLoad<T>(
  load: () => Promise<T>,
  deps: unknown[],
  onUnauthorized: (error: ApiError) => void,
): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: ApiError; loading: boolean }>({ loading: true });
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    let current = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => current && setState({ data, loading: false }),
      (error: unknown) => {
        if (!current) return;
        const apiError = error instanceof ApiError ? error : new ApiError(0, 'ConsoleError', String(error));
        if (apiError.status === 401) onUnauthorized(apiError);
        setState({ error: apiError, loading: false });
      },
    );
    return () => {
      current = false;
    };
    // The caller names what the load depends on.
  }, [...deps, generation]);
  const reload = useCallback(() => setGeneration((g) => g + 1), []);
  return { ...state, reload };
}

export function Badge({ value, label }: { value: string | undefined; label?: string }) {
  return <span class={`badge ${tone(value)}`}>{label ?? value ?? 'Unknown'}</span>;
}

export function ErrorBox({ error }: { error: ApiError }) {
  return (
    <div class="error" role="alert">
      <strong>{error.reason}</strong> {error.message}
    </div>
  );
}

export function Section({
  title,
  children,
  aside,
}: {
  title: string;
  children: ComponentChildren;
  aside?: ComponentChildren;
}) {
  return (
    <section class="card">
      <header class="card-head">
        <h2>{title}</h2>
        {aside}
      </header>
      {children}
    </section>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}
