/** What a caller may do with tasks of a worker type, as the gateway's permissions name it. `admin` is every action. */
export type Action = "submit" | "read" | "cancel" | "operate" | "admin";

/** For each action, the worker types it is granted on ("*" for all). */
export type Permissions = ReadonlyMap<string, ReadonlySet<string>>;

/**
 * Reads the permissions WhoAmI reports, "<action>:<worker type>" (e.g. "read:*",
 * "operate:billing"); a bare "admin" is "admin:*".
 */
export function parsePermissions(granted: readonly string[]): Permissions {
  const permissions = new Map<string, Set<string>>();
  for (const permission of granted) {
    const [action = "", type = action === "admin" ? "*" : ""] = permission.split(":");
    if (!type) continue;
    const types = permissions.get(action) ?? new Set<string>();
    types.add(type);
    permissions.set(action, types);
  }
  return permissions;
}

/**
 * Whether `permissions` allow `action` on tasks of `workerType`, as the
 * gateway decides it (server/permissions.ts): the action or admin, on the type or on "*".
 */
export function allows(permissions: Permissions, action: Action, workerType: string): boolean {
  for (const granted of [action, "admin"]) {
    const types = permissions.get(granted);
    if (types && (types.has("*") || types.has(workerType))) return true;
  }
  return false;
}
