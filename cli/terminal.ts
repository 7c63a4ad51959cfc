import { createInterface } from "node:readline";
import { UsageError } from "./usage-error.ts";

/** A column of {@link layoutTable}. */
export interface Column {
  /** Its heading, in capitals by convention. */
  readonly header: string;
  /** "right" for numbers. @default "left" */
  readonly align?: "left" | "right";
  /**
   * Free text (an error, a progress note) that is cut short, with "…", when the
   * table is wider than the screen. Other columns (ids, names, counts) never are.
   */
  readonly shrink?: boolean;
}

/** The narrowest a shrinking column becomes (or its header, when wider). */
const shrinkFloor = 8;

/**
 * Lays rows out as aligned plain text, two spaces between columns, the header
 * first. When the table is wider than `width`, the shrinking columns lose
 * characters, the widest first, down to {@link shrinkFloor}; whitespace in
 * cells (newlines of an error message) becomes single spaces.
 */
export function layoutTable(columns: readonly Column[], rows: readonly (readonly string[])[], width: number): string[] {
  const cells = rows.map((row) => columns.map((_, i) => printable((row[i] ?? "").replace(/\s+/g, " ").trim())));
  const widths = columns.map((column, i) => Math.max(column.header.length, ...cells.map((row) => row[i]?.length ?? 0)));
  const floors = columns.map((column, i) =>
    column.shrink ? Math.min(widths[i] ?? 0, Math.max(column.header.length, shrinkFloor)) : (widths[i] ?? 0),
  );
  let excess = widths.reduce((sum, w) => sum + w, 2 * (columns.length - 1)) - width;
  while (excess > 0) {
    let widest = -1;
    for (let i = 0; i < widths.length; i++) {
      if ((widths[i] ?? 0) > (floors[i] ?? 0) && (widest < 0 || (widths[i] ?? 0) > (widths[widest] ?? 0))) widest = i;
    }
    if (widest < 0) break;
    widths[widest] = (widths[widest] ?? 0) - 1;
    excess--;
  }
  const line = (row: readonly string[]) =>
    columns
      .map((column, i) => {
        const w = widths[i] ?? 0;
        const text = clip(row[i] ?? "", w);
        return column.align === "right" ? text.padStart(w) : text.padEnd(w);
      })
      .join("  ")
      .trimEnd();
  return [line(columns.map((column) => column.header)), ...cells.map(line)];
}

/** `text` cut to `width` characters, its last one "…" when cut. */
function clip(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}…`;
}

/** "1 dead letter", "12 dead letters": a count and its noun, plural unless one. */
export function counted(count: number | bigint, noun: string): string {
  return `${count} ${noun}${count === 1 || count === 1n ? "" : "s"}`;
}

/**
 * A record as "label  value" lines, the values aligned; a value of several
 * lines (a result in JSON) continues under its first. Fields without a value
 * are left out.
 */
export function formatFields(fields: readonly (readonly [string, string | undefined])[]): string[] {
  const shown = fields.filter((field): field is readonly [string, string] => Boolean(field[1]));
  const width = Math.max(0, ...shown.map(([label]) => label.length)) + 2;
  return shown.flatMap(([label, value]) =>
    value
      .split("\n")
      .map((text, i) => `${i === 0 ? label.padEnd(width) : " ".repeat(width)}${printable(text)}`.trimEnd()),
  );
}

/**
 * Text without the control characters a terminal would act on (escape
 * sequences that move the cursor, retitle the window or write the clipboard):
 * cells and values hold what submitters and handlers wrote. Tabs stay.
 */
export function printable(text: string): string {
  let clean = "";
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0;
    if (code === 9 || (code >= 32 && code < 127) || code > 159) clean += char;
  }
  return clean;
}

/**
 * What a destructive command does before acting: "proceed" with `--yes`; "ask"
 * when a person is at a terminal (stdin and stdout both terminals); otherwise
 * "refuse", for a script must say `--yes` to destroy anything.
 */
export function confirmationRule(options: { yes: boolean; interactive: boolean }): "proceed" | "ask" | "refuse" {
  if (options.yes) return "proceed";
  return options.interactive ? "ask" : "refuse";
}

/** True for an answer that means yes ("y" or "yes", in any case); no answer, or any other, is no. */
export function isYes(answer: string | undefined): boolean {
  return /^\s*y(es)?\s*$/i.test(answer ?? "");
}

/** Where a command writes, and whom it may ask. */
export interface Terminal {
  /** Writes a line of output (stdout). */
  print(line: string): void;
  /** Writes a line for the person, not for a script reading the output (stderr). */
  note(line: string): void;
  /** Whether stdin and stdout are both terminals: a person is there to answer. */
  readonly interactive: boolean;
  /**
   * How wide tables may be: at a terminal its width (80 when it says none), so
   * long cells are cut; elsewhere (a pipe, a file) unbounded, so nothing is.
   */
  readonly columns: number;
  /** Asks `question` on stderr; resolves with the line typed, or undefined at the end of input. */
  ask(question: string): Promise<string | undefined>;
}

/** This process's terminal: stdout, stderr and stdin. */
export function processTerminal(): Terminal {
  return {
    print: (line) => process.stdout.write(`${line}\n`),
    note: (line) => process.stderr.write(`${line}\n`),
    interactive: Boolean(process.stdin.isTTY && process.stdout.isTTY),
    columns: process.stdout.isTTY ? process.stdout.columns || 80 : Number.POSITIVE_INFINITY,
    ask(question) {
      process.stderr.write(question);
      // Not a readline terminal: the terminal's own line editing and echo serve.
      const input = createInterface({ input: process.stdin, terminal: false });
      return new Promise((resolve) => {
        input.once("line", (line) => {
          resolve(line);
          input.close();
        });
        input.once("close", () => resolve(undefined));
      });
    },
  };
}

/**
 * Confirms a destructive `action` (e.g. "purge 12 dead letters of hasher") by
 * {@link confirmationRule}: at a terminal asks "Purge 12 dead letters of
 * hasher? [y/N]"; throws a UsageError, with nothing done, on any answer but
 * yes, or when there is no terminal and no `--yes`.
 */
export async function confirm(terminal: Terminal, yes: boolean, action: string): Promise<void> {
  const rule = confirmationRule({ yes, interactive: terminal.interactive });
  if (rule === "proceed") return;
  if (rule === "refuse") {
    throw new UsageError(
      `refusing to ${action} without confirmation: pass --yes (stdin or stdout is not a terminal to ask on)`,
    );
  }
  const question = `${action.charAt(0).toUpperCase()}${action.slice(1)}? [y/N] `;
  if (!isYes(await terminal.ask(question))) throw new UsageError(`not confirmed: did not ${action}`);
}
