import { Code, ConnectError } from "@connectrpc/connect";
import { useCallback, useEffect, useState } from "preact/hooks";
import { authEvents, errorMessage, gatewayService } from "./api.ts";
import { SignIn } from "./components/sign-in.tsx";
import { forgetCredential, readCredential, storeCredential } from "./credential.ts";
import { DeadLettersPage } from "./pages/dead-letters-page.tsx";
import { QueuesPage } from "./pages/queues-page.tsx";
import { SubmitPage } from "./pages/submit-page.tsx";
import { TaskPage } from "./pages/task-page.tsx";
import { TasksPage } from "./pages/tasks-page.tsx";
import { WorkersPage } from "./pages/workers-page.tsx";
import { allows, parsePermissions } from "./permissions.ts";
import { type Route, useRoute } from "./router.ts";
import { type Session, SessionContext } from "./session.ts";
import { taskTypesOf } from "./task-types.ts";

/** What the console shows before its pages: loading, a sign-in form, or why it cannot reach the gateway. */
type Start =
  | { readonly step: "loading" }
  | { readonly step: "sign-in"; readonly problem: string | undefined }
  | { readonly step: "unreachable"; readonly problem: string }
  | { readonly step: "ready"; readonly session: Session };

/** Asks the gateway who the caller is and which task types it may see. */
async function startSession(): Promise<Session> {
  const [who, types] = await Promise.all([gatewayService.whoAmI({}), gatewayService.listTaskTypes({})]);
  return {
    name: who.name,
    via: who.via,
    permissions: parsePermissions(who.permissions),
    types: taskTypesOf(types),
    signedIn: readCredential() !== undefined,
  };
}

/**
 * The console: signs the caller in where the gateway asks for credentials,
 * then shows the page of the URL's hash under a navigation bar.
 */
export function App() {
  const [start, setStart] = useState<Start>({ step: "loading" });
  const begin = useCallback(async () => {
    try {
      setStart({ step: "ready", session: await startSession() });
    } catch (error) {
      if (ConnectError.from(error).code === Code.Unauthenticated) {
        const had = readCredential() !== undefined;
        forgetCredential();
        setStart({
          step: "sign-in",
          problem: had ? `The gateway refused the credential: ${errorMessage(error)}` : undefined,
        });
      } else {
        setStart({ step: "unreachable", problem: errorMessage(error) });
      }
    }
  }, []);
  useEffect(() => {
    void begin();
    const refused = () => {
      forgetCredential();
      setStart({ step: "sign-in", problem: "The gateway no longer accepts your credential: sign in again." });
    };
    authEvents.addEventListener("unauthenticated", refused);
    return () => authEvents.removeEventListener("unauthenticated", refused);
  }, []);
  const signIn = (credential: string) => {
    storeCredential(credential);
    setStart({ step: "loading" });
    void begin();
  };
  const signOut = () => {
    forgetCredential();
    setStart({ step: "loading" });
    void begin();
  };
  switch (start.step) {
    case "loading":
      return <p class="loading">Loading…</p>;
    case "sign-in":
      return <SignIn problem={start.problem} onSignIn={signIn} />;
    case "unreachable":
      return (
        <main class="sign-in">
          <h1>Taskwire</h1>
          <p class="problem">The gateway cannot be reached: {start.problem}</p>
          <button type="button" onClick={() => void begin()}>
            Try again
          </button>
        </main>
      );
    case "ready":
      return (
        <SessionContext.Provider value={start.session}>
          <Shell
            session={start.session}
            onSignOut={signOut}
            onSignIn={() => setStart({ step: "sign-in", problem: undefined })}
          />
        </SessionContext.Provider>
      );
  }
}

function Shell({
  session,
  onSignOut,
  onSignIn,
}: {
  readonly session: Session;
  readonly onSignOut: () => void;
  readonly onSignIn: () => void;
}) {
  const route = useRoute();
  const canSubmit = session.types.kinds.some((kind) => allows(session.permissions, "submit", kind.workerType));
  const tab = (href: string, label: string, pages: readonly Route["page"][]) => (
    <a href={href} aria-current={pages.includes(route.page) ? "page" : undefined}>
      {label}
    </a>
  );
  return (
    <>
      <header class="top">
        <a class="brand" href="#/queues">
          Taskwire
        </a>
        <nav aria-label="Pages">
          {tab("#/queues", "Queues", ["queues", "dead-letters"])}
          {tab("#/workers", "Workers", ["workers"])}
          {tab("#/tasks", "Tasks", ["tasks", "task"])}
          {canSubmit ? tab("#/submit", "Submit", ["submit"]) : null}
        </nav>
        <div class="who">
          <span title={`authenticated by ${session.via}`}>{session.name}</span>
          {session.signedIn ? (
            <button type="button" class="link" onClick={onSignOut}>
              Sign out
            </button>
          ) : session.via === "anonymous" ? (
            <button type="button" class="link" onClick={onSignIn}>
              Sign in
            </button>
          ) : null}
        </div>
      </header>
      <main class="page">
        <PageOf route={route} />
      </main>
    </>
  );
}

function PageOf({ route }: { readonly route: Route }) {
  const [first = "", second = ""] = route.params;
  switch (route.page) {
    case "queues":
      return <QueuesPage />;
    case "workers":
      return <WorkersPage workerType={route.query.get("type") ?? ""} />;
    case "tasks":
      return <TasksPage query={route.query} />;
    case "task":
      return <TaskPage key={first} taskId={first} />;
    case "dead-letters":
      return <DeadLettersPage workerType={first} />;
    case "submit":
      return <SubmitPage workerType={first} method={second} />;
    case "not-found":
      return (
        <p class="problem">
          No such page. <a href="#/queues">The queues</a>
        </p>
      );
  }
}
