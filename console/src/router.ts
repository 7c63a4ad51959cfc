import { useEffect, useState } from "preact/hooks";

/** The console's pages. */
export type Page = "queues" | "workers" | "tasks" | "task" | "dead-letters" | "submit" | "not-found";

/** Where the console is: the page, its path parameters and its query, all from the URL's hash (`#/tasks/<id>`). */
export interface Route {
  readonly page: Page;
  readonly params: readonly string[];
  readonly query: URLSearchParams;
}

/** Reads a route from a hash such as "#/tasks?type=hasher" or "#/tasks/hasher.01J...". */
export function parseRoute(hash: string): Route {
  const [path = "", search = ""] = hash.replace(/^#/, "").split("?", 2);
  const [first = "queues", ...rest] = path
    .split("/")
    .filter(Boolean)
    .map((segment) => decodeURIComponent(segment));
  const query = new URLSearchParams(search);
  if (first === "tasks" && rest.length > 0) return { page: "task", params: rest, query };
  const known: readonly Page[] = ["queues", "workers", "tasks", "dead-letters", "submit"];
  const page = known.includes(first as Page) ? (first as Page) : "not-found";
  return { page, params: rest, query };
}

/** The current route, following the hash as it changes. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const follow = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", follow);
    return () => removeEventListener("hashchange", follow);
  }, []);
  return route;
}

/** Goes to a route, e.g. `navigate(links.task(id))`. */
export function navigate(href: string): void {
  location.hash = href;
}

const segment = encodeURIComponent;

/** The hash links of the console's pages. */
export const links = {
  queues: () => "#/queues",
  workers: (workerType?: string) => (workerType ? `#/workers?type=${segment(workerType)}` : "#/workers"),
  tasks: (query?: URLSearchParams) => (query && query.size > 0 ? `#/tasks?${query}` : "#/tasks"),
  task: (taskId: string) => `#/tasks/${segment(taskId)}`,
  deadLetters: (workerType: string) => `#/dead-letters/${segment(workerType)}`,
  submit: (workerType?: string, method?: string) =>
    ["#/submit", workerType, method]
      .filter((part) => part !== undefined)
      .map((part, i) => (i === 0 ? part : segment(part as string)))
      .join("/"),
};
