import { describe, expect, it } from "vitest";
import { createUndoStack } from "./undo-stack.js";

describe("undo stack", () => {
  it("undoes last-first and keeps going past a failing undo", async () => {
    const undone: string[] = [];
    const stack = createUndoStack();
    stack.push("dir", () => void undone.push("dir"));
    stack.push("mount", () => {
      throw new Error("busy");
    });
    stack.push("netns", async () => void undone.push("netns"));
    expect(stack.size).toBe(3);
    const failures = await stack.rollback();
    expect(undone).toEqual(["netns", "dir"]);
    expect(failures.map((f) => f.what)).toEqual(["mount"]);
    expect(failures[0]?.error).toEqual(new Error("busy"));
    expect(stack.size).toBe(0);
    expect(await stack.rollback()).toEqual([]);
  });

  it("commit forgets the undos", async () => {
    const undone: string[] = [];
    const stack = createUndoStack();
    stack.push("dir", () => void undone.push("dir"));
    stack.commit();
    expect(await stack.rollback()).toEqual([]);
    expect(undone).toEqual([]);
  });
});
