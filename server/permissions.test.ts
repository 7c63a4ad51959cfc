import { describe, expect, it } from "vitest";
import { allows, grantsAnything, parsePermissions } from "./permissions.ts";

describe("permissions", () => {
  it("allow an action on the types named, on every type with *, and everything with admin", () => {
    const billing = parsePermissions(["submit:billing", "read:*"], "key");
    expect(allows(billing, "submit", "billing")).toBe(true);
    expect(allows(billing, "submit", "email")).toBe(false);
    expect(allows(billing, "read", "email")).toBe(true);
    expect(allows(billing, "cancel", "billing")).toBe(false);
    const admin = parsePermissions(["admin"], "key");
    expect(allows(admin, "operate", "email")).toBe(true);
    expect(allows(parsePermissions(["admin:email"], "key"), "cancel", "billing")).toBe(false);
    expect(grantsAnything(parsePermissions([], "key"))).toBe(false);
  });

  it("refuse what is not a permission, naming it and the form", () => {
    expect(() => parsePermissions(["delete:billing"], "auth.apiKeys[0].permissions")).toThrow(
      /^auth\.apiKeys\[0\]\.permissions\[0\] "delete:billing" has no known action: a permission is "<action>:<worker type>"/,
    );
    expect(() => parsePermissions(["read"], "p")).toThrow(/^p\[0\] "read" is not of that form/);
    expect(() => parsePermissions(["read:a:b"], "p")).toThrow(/is not of that form/);
    expect(() => parsePermissions(["read:Billing"], "p")).toThrow(/names no valid worker type/);
    expect(() => parsePermissions([7], "p")).toThrow(/^p\[0\] is not a string/);
  });
});
