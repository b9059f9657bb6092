/**
 * An undo stack for operations that acquire several resources in turn (a create, an attach, a
 * restore): each step that succeeded registers how to undo itself; on failure `rollback()` undoes
 * them last-first, running every undo even when one throws, and reports what could not be undone.
 * On success `commit()` drops the undos: the resources now belong to the result.
 */
export interface UndoStack {
  /** Registers the undo of a step that just succeeded; `what` names it in errors. */
  push(what: string, undo: () => Promise<void> | void): void;
  /** Undoes every registered step, last first. Resolves with the failures (empty: all undone). */
  rollback(): Promise<UndoFailure[]>;
  /** Forgets every undo (the operation succeeded). */
  commit(): void;
  /** Steps registered and not yet undone or committed. */
  readonly size: number;
}

export interface UndoFailure {
  readonly what: string;
  readonly error: unknown;
}

export function createUndoStack(): UndoStack {
  let steps: { what: string; undo: () => Promise<void> | void }[] = [];
  return {
    push(what, undo) {
      steps.push({ what, undo });
    },
    async rollback() {
      const pending = steps.reverse();
      steps = [];
      const failures: UndoFailure[] = [];
      for (const step of pending) {
        try {
          await step.undo();
        } catch (error) {
          failures.push({ what: step.what, error });
        }
      }
      return failures;
    },
    commit() {
      steps = [];
    },
    get size() {
      return steps.length;
    },
  };
}
