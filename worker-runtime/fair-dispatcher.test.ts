import { describe, expect, it } from "vitest";
import { shareOut } from "./fair-dispatcher.ts";

describe("shareOut", () => {
  it("gives one task per key at a time, from the first key on, never more than a key holds", () => {
    // A flood and three quiet keys, room for 8: a task of each, then of those with more, in turn.
    expect(shareOut([1000, 2, 1, 3], 8, 0)).toEqual([3, 2, 1, 2]);
    // Room for 3 of 4 keys: the round starts at key 2, so key 1 waits for the next round.
    expect(shareOut([5, 5, 5, 5], 3, 2)).toEqual([1, 0, 1, 1]);
    // More room than tasks: every task.
    expect(shareOut([2, 1], 100, 1)).toEqual([2, 1]);
    expect(shareOut([], 10, 0)).toEqual([]);
  });
});
