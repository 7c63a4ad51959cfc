/** Where the console keeps the caller's credential: this tab's session storage, never localStorage. */
const storageKey = "taskwire.credential";

/** The API key or JWT the console signs its calls with, if the caller gave one in this tab. */
export function readCredential(): string | undefined {
  try {
    return sessionStorage.getItem(storageKey) ?? undefined;
  } catch {
    // Storage refused (a private mode): the caller signs in again.
    return undefined;
  }
}

/** Keeps a credential for this tab until it closes or the caller signs out. */
export function storeCredential(credential: string): void {
  sessionStorage.setItem(storageKey, credential);
}

/** Forgets the credential: the next call goes without one. */
export function forgetCredential(): void {
  try {
    sessionStorage.removeItem(storageKey);
  } catch {
    // Nothing was kept.
  }
}
