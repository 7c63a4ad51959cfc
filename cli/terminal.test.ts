import { describe, expect, it } from "vitest";
import { confirm, confirmationRule, formatFields, isYes, layoutTable, type Terminal } from "./terminal.ts";
import { UsageError } from "./usage-error.ts";

describe("tables", () => {
  const columns = [{ header: "ID" }, { header: "COUNT", align: "right" as const }, { header: "NOTE", shrink: true }];

  it("aligns columns two spaces apart, numbers to the right, without trailing spaces", () => {
    expect(
      layoutTable(
        columns,
        [
          ["a", "1", "fine"],
          ["longer", "1200", ""],
        ],
        80,
      ),
    ).toEqual(["ID      COUNT  NOTE", "a           1  fine", "longer   1200"]);
  });

  it("cuts the shrinking column short with … to fit the width, never the others", () => {
    const lines = layoutTable(
      columns,
      [["hasher.01JZ3X7Q8R9S0T1V2W3X4Y5Z6A", "3", "the handler threw: connection refused by 10.0.0.7:5432"]],
      60,
    );
    expect(lines).toEqual([
      "ID                                 COUNT  NOTE",
      "hasher.01JZ3X7Q8R9S0T1V2W3X4Y5Z6A      3  the handler threw…",
    ]);
    expect(Math.max(...lines.map((line) => line.length))).toBe(60);
  });

  it("keeps a shrinking column at 8 characters at least, and puts newlines of a cell on one line", () => {
    const lines = layoutTable(columns, [["x".repeat(70), "1", "first line\nsecond line"]], 80);
    expect(lines[1]).toBe(`${"x".repeat(70)}      1  first l…`);
    expect(layoutTable(columns, [["a", "1", "two\n  lines"]], 80)[1]).toBe("a       1  two lines");
  });

  it("lays a record out as aligned fields, values of several lines under their first", () => {
    expect(
      formatFields([
        ["state", "FAILED"],
        ["key", ""],
        ["result", '{\n  "a": 1\n}'],
      ]),
    ).toEqual(["state   FAILED", "result  {", '          "a": 1', "        }"]);
  });
});

describe("what submitters and handlers wrote", () => {
  it("reaches the terminal without its control characters", () => {
    const hostile = "ok\u001b]52;c;aGk=\u0007\u001b[2J\u009bdone\tend";
    expect(layoutTable([{ header: "NOTE" }], [[hostile]], 80)).toEqual(["NOTE", "ok]52;c;aGk=[2Jdone end"]);
    expect(formatFields([["error", `line one\u001b[31m\nline two\u0007`]])).toEqual([
      "error  line one[31m",
      "       line two",
    ]);
  });
});

describe("confirmation", () => {
  it("proceeds with --yes, asks at a terminal, and refuses otherwise", () => {
    expect(confirmationRule({ yes: true, interactive: false })).toBe("proceed");
    expect(confirmationRule({ yes: true, interactive: true })).toBe("proceed");
    expect(confirmationRule({ yes: false, interactive: true })).toBe("ask");
    expect(confirmationRule({ yes: false, interactive: false })).toBe("refuse");
  });

  it("takes y or yes, in any case, as yes; anything else, or no answer, as no", () => {
    for (const answer of ["y", "Y", "yes", "YES", " y "]) expect(isYes(answer)).toBe(true);
    for (const answer of ["", "n", "no", "yeah", "yy", undefined]) expect(isYes(answer)).toBe(false);
  });

  /** A terminal that answers `answer` and records what it was asked. */
  const terminal = (interactive: boolean, answer?: string) => {
    const asked: string[] = [];
    const screen: Terminal = {
      print: () => {},
      note: () => {},
      interactive,
      columns: 80,
      ask: async (question) => {
        asked.push(question);
        return answer;
      },
    };
    return { screen, asked };
  };

  it("asks with the count, and does nothing unless the answer is yes", async () => {
    const yes = terminal(true, "y");
    await confirm(yes.screen, false, "purge 12 dead letters of hasher");
    expect(yes.asked).toEqual(["Purge 12 dead letters of hasher? [y/N] "]);
    for (const answer of ["n", "", undefined]) {
      await expect(confirm(terminal(true, answer).screen, false, "purge 12 dead letters of hasher")).rejects.toThrow(
        new UsageError("not confirmed: did not purge 12 dead letters of hasher"),
      );
    }
  });

  it("without a terminal refuses, naming --yes, and does not ask", async () => {
    const none = terminal(false, "y");
    await expect(confirm(none.screen, false, "purge 12 dead letters of hasher")).rejects.toThrow(
      "refusing to purge 12 dead letters of hasher without confirmation: pass --yes (stdin or stdout is not a terminal to ask on)",
    );
    await confirm(none.screen, true, "purge 12 dead letters of hasher");
    expect(none.asked).toEqual([]);
  });
});
