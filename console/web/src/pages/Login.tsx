import { useState } from "preact/hooks";
import { api, ApiError } from "../api/client";
import { navigate } from "../router";

/** Log in with the cluster's token (its secret); the server sets a session cookie. */
export function LoginPage({ next }: { next: string }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await api.login({ token });
      navigate(next.startsWith("/") && !next.startsWith("/login") ? next : "/jobs");
    } catch (e) {
      setError(e instanceof ApiError && e.status === 401 ? "Wrong token." : String((e as Error).message));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <h1>Tethys</h1>
      <form onSubmit={submit}>
        <label>
          Token
          <input id="token" type="password" autocomplete="current-password" value={token} onInput={(e) => setToken(e.currentTarget.value)} autofocus />
        </label>
        <p class="hint">The cluster's secret (what `tethys up` and `tethys demo` print, or TETHYS_CLUSTER_SECRET).</p>
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit" disabled={busy || token === ""}>
          Log in
        </button>
      </form>
    </main>
  );
}
