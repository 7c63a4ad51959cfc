import { useState } from "preact/hooks";

/**
 * Asks for an API key or a JWT. The console keeps it in this tab's session
 * storage only and sends it as `authorization: Bearer` with every call.
 */
export function SignIn({
  problem,
  onSignIn,
}: {
  /** Why the caller is asked: the gateway refused the credential it had. */
  readonly problem: string | undefined;
  readonly onSignIn: (credential: string) => void;
}) {
  const [credential, setCredential] = useState("");
  return (
    <main class="sign-in">
      <form
        aria-labelledby="sign-in-title"
        onSubmit={(event) => {
          event.preventDefault();
          if (credential.trim()) onSignIn(credential.trim());
        }}
      >
        <h1 id="sign-in-title">Sign in to Taskwire</h1>
        <p class="muted">
          This gateway asks who you are. Your credential stays in this tab until you sign out or close it.
        </p>
        <div class="field">
          <label for="credential">API key or JWT</label>
          <input
            id="credential"
            type="password"
            autocomplete="off"
            spellcheck={false}
            value={credential}
            onInput={(event) => setCredential((event.currentTarget as HTMLInputElement).value)}
            required
          />
        </div>
        {problem ? (
          <p class="problem" role="alert">
            {problem}
          </p>
        ) : null}
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}
