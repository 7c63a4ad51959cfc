/** What a caller may do with tasks of a worker type. `admin` is every action. */
export type Action = "submit" | "read" | "cancel" | "operate" | "admin";

const actions: readonly Action[] = ["submit", "read", "cancel", "operate", "admin"];
const workerTypePattern = /^[a-z][a-z0-9_-]*$/;

/**
 * A permission as configured: `"<action>:<worker type>"`, the type `*` for
 * every type, e.g. `"submit:billing"`, `"read:*"`. A bare `"admin"` is
 * `"admin:*"`.
 */
export type Permission = string;

/** Who made a call, as authentication found it, and what it may do. */
export interface Principal {
  /** The API key's name, the JWT's subject, or "anonymous". */
  readonly name: string;
  /** How it was authenticated. */
  readonly via: "api-key" | "jwt" | "client-cert" | "anonymous" | "open";
  /** Its permissions, by action. */
  readonly permissions: PermissionSet;
}

/** Parsed permissions: for each action, the worker types it holds for ("*" for all). */
export type PermissionSet = ReadonlyMap<Action, ReadonlySet<string>>;

/**
 * Parses permissions; an invalid one is an error naming it and the accepted
 * form, prefixed with `where` (a config key).
 */
export function parsePermissions(permissions: readonly unknown[], where: string): PermissionSet {
  const set = new Map<Action, Set<string>>();
  for (const [i, permission] of permissions.entries()) {
    const fail = (problem: string): never => {
      throw new Error(
        `${where}[${i}] ${problem}: a permission is "<action>:<worker type>" with action one of ${actions.join(", ")} and the type a worker type or "*" (e.g. "submit:billing"), or "admin"`,
      );
    };
    if (typeof permission !== "string") fail("is not a string");
    const [action, type = action === "admin" ? "*" : undefined, ...rest] = (permission as string).split(":");
    if (!actions.includes(action as Action)) fail(`"${permission}" has no known action`);
    if (type === undefined || rest.length > 0) fail(`"${permission}" is not of that form`);
    if (type !== "*" && !workerTypePattern.test(type as string)) fail(`"${permission}" names no valid worker type`);
    const types = set.get(action as Action) ?? new Set<string>();
    set.set(action as Action, types);
    types.add(type as string);
  }
  return set;
}

/** Whether `permissions` allow `action` on tasks of `workerType` (`admin` allows all). */
export function allows(permissions: PermissionSet, action: Action, workerType: string): boolean {
  for (const granted of [action, "admin"] as const) {
    const types = permissions.get(granted);
    if (types && (types.has("*") || types.has(workerType))) return true;
  }
  return false;
}

/** Whether `permissions` grant anything at all. */
export function grantsAnything(permissions: PermissionSet): boolean {
  for (const types of permissions.values()) if (types.size > 0) return true;
  return false;
}

/** The permission that would allow `action` on `workerType`, for an error to name. */
export function needed(action: Action, workerType: string): Permission {
  return `${action}:${workerType}`;
}
