/** When a client last did something that counts as use (exec, file read/write, session input). */
export class ActivityClock {
  private lastUnix = Math.floor(Date.now() / 1000);

  touch(): void {
    this.lastUnix = Math.floor(Date.now() / 1000);
  }

  get lastActivityUnix(): number {
    return this.lastUnix;
  }
}
