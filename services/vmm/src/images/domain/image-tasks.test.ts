import { describe, expect, it } from "vitest";
import { TaskFailure, createImageTaskBoard } from "./image-tasks.js";

describe("image task board", () => {
  it("reports progress and the outcome, and forgets the oldest finished tasks past its history limit", async () => {
    const board = createImageTaskBoard({
      historyLimit: 2,
      describe: (e) => (e instanceof TaskFailure ? e.message : "internal error"),
    });
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const running = board.start("image_pull", "u1", "img", async (t) => {
      t.phase = "copying";
      t.layersDone = 1;
      await gate;
    });
    expect(board.get(running.id)).toMatchObject({ state: "running", phase: "copying", layersDone: 1 });
    const failed = board.start("image_pull", "u1", "bad", async () => {
      throw new TaskFailure("registry said no");
    });
    const internal = board.start("image_save", "u1", "x", async () => {
      throw new Error("EACCES /var/lib/bhatti/secret/path");
    });
    expect(await board.settled(failed.id)).toMatchObject({ state: "failed", error: "registry said no" });
    expect(await board.settled(internal.id)).toMatchObject({ state: "failed", error: "internal error" });
    release();
    expect(await board.settled(running.id)).toMatchObject({ state: "completed", phase: "done" });
    // Three finished, history 2: the first to finish is gone.
    expect(board.get(failed.id)).toBeUndefined();
    expect(board.get(internal.id)).toBeDefined();
    expect(board.get(running.id)?.finishedAt).toBeGreaterThan(0);
  });
});
