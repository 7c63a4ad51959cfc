import { createContext } from "preact";
import { useContext } from "preact/hooks";
import { type Action, allows, type Permissions } from "./permissions.ts";
import type { TaskTypes } from "./task-types.ts";

/** The caller as the gateway knows it, and what the console shows it. */
export interface Session {
  /** The API key's name, the token's subject, or "anonymous". */
  readonly name: string;
  /** How the gateway authenticated it: "api-key", "jwt", "client-cert", "anonymous" or "open". */
  readonly via: string;
  readonly permissions: Permissions;
  /** The task types the caller may read or submit to. */
  readonly types: TaskTypes;
  /** Whether the caller signed in with a credential in this tab. */
  readonly signedIn: boolean;
}

/** The session of the signed-in caller, for every page. */
export const SessionContext = createContext<Session | undefined>(undefined);

/** The current session; only pages under the signed-in shell call it. */
export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession() is called outside the signed-in console");
  return session;
}

/** Whether the caller may do `action` on `workerType`: action buttons show only then. */
export function useCan(): (action: Action, workerType: string) => boolean {
  const { permissions } = useSession();
  return (action, workerType) => allows(permissions, action, workerType);
}
