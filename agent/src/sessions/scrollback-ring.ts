/** The last `capacity` bytes a session printed, replayed to a client that (re)attaches. */
export class ScrollbackRing {
  private readonly buf: Buffer;
  private writePos = 0;
  private wrapped = false;

  constructor(readonly capacity: number) {
    this.buf = Buffer.alloc(capacity);
  }

  write(chunk: Uint8Array): void {
    const cap = this.capacity;
    if (chunk.byteLength >= cap) {
      this.buf.set(chunk.subarray(chunk.byteLength - cap));
      this.writePos = 0;
      this.wrapped = true;
      return;
    }
    const first = Math.min(chunk.byteLength, cap - this.writePos);
    this.buf.set(chunk.subarray(0, first), this.writePos);
    const rest = chunk.byteLength - first;
    if (rest > 0) {
      this.buf.set(chunk.subarray(first), 0);
      this.writePos = rest;
      this.wrapped = true;
    } else {
      this.writePos += first;
      if (this.writePos === cap) {
        this.writePos = 0;
        this.wrapped = true;
      }
    }
  }

  /** The stored bytes, oldest first (a copy). */
  snapshot(): Buffer {
    if (!this.wrapped) return Buffer.from(this.buf.subarray(0, this.writePos));
    return Buffer.concat(
      [this.buf.subarray(this.writePos), this.buf.subarray(0, this.writePos)],
      this.capacity,
    );
  }

  get size(): number {
    return this.wrapped ? this.capacity : this.writePos;
  }
}
