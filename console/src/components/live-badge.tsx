import type { Live } from "../live.ts";

const labels = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  ended: "final",
  failed: "stopped",
} as const;

/** A small badge saying whether a page's data is live from the gateway's stream. */
export function LiveBadge({ live }: { readonly live: Live }) {
  return (
    <span class={`live-badge live-${live.state}`} role="status" title={live.error}>
      {labels[live.state]}
    </span>
  );
}
