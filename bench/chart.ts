import type { RunOutcome } from "./execute-run.ts";

/** Bar colours by kind of system: the raw JetStream limits, Taskwire, BullMQ. */
const colours = { raw: "#9aa5b1", taskwire: "#2f6fdf", bullmq: "#d9822b" } as const;

/**
 * docs/benchmarks.svg: each system's end-to-end throughput (its median run) as a
 * horizontal bar, side by side, with its p50 latency where it has one. Plain SVG,
 * no script, readable on GitHub and in any browser.
 */
export function throughputChart(outcomes: readonly RunOutcome[], title: string): string {
  const rows = outcomes.map((o) => ({
    label: o.run.label,
    kind: o.run.id.startsWith("raw") ? "raw" : o.run.id === "bullmq" ? "bullmq" : "taskwire",
    perSec: "error" in o ? 0 : o.result.endToEndPerSec,
    p50: "error" in o ? undefined : o.result.latency?.p50,
    failed: "error" in o,
  }));
  const labelWidth = 460;
  const barWidth = 360;
  const rowHeight = 26;
  const top = 44;
  const width = labelWidth + barWidth + 190;
  const height = top + rows.length * rowHeight + 16;
  const most = Math.max(1, ...rows.map((r) => r.perSec));
  const bars = rows.map((row, i) => {
    const y = top + i * rowHeight;
    const length = Math.round((row.perSec / most) * barWidth);
    const value = row.failed
      ? "failed"
      : `${Math.round(row.perSec).toLocaleString("en-US")} tasks/s${row.p50 === undefined ? "" : ` · p50 ${row.p50.toFixed(1)} ms`}`;
    return [
      `<text x="${labelWidth - 8}" y="${y + 17}" text-anchor="end">${xmlText(row.label)}</text>`,
      `<rect x="${labelWidth}" y="${y + 4}" width="${length}" height="${rowHeight - 8}" fill="${colours[row.kind as keyof typeof colours]}"/>`,
      `<text x="${labelWidth + length + 6}" y="${y + 17}">${value}</text>`,
    ].join("");
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="13">
<title>${xmlText(title)}</title>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="12" y="24" font-size="15" font-weight="600">${xmlText(title)}</text>
${bars.join("\n")}
</svg>
`;
}

function xmlText(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
