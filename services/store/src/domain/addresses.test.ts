import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStoreDatabase, type SqliteDatabase } from "../adapters/sqlite-database.js";
import { codeOf } from "../testing/connect-code.js";
import { makeTestDir, removeTestDir } from "../testing/store-process.js";
import { type AddressBook, createAddressBook } from "./addresses.js";

describe("address book", () => {
  let dir: string;
  let db: SqliteDatabase;
  let book: AddressBook;
  beforeEach(() => {
    dir = makeTestDir("addr");
    db = openStoreDatabase(join(dir, "state.db"));
    book = createAddressBook(db);
  });
  afterEach(() => {
    db.close();
    removeTestDir(dir);
  });

  const reserve = (userId: string, sandboxId: string, requestedHost = 0) =>
    book.reserve({ userId, sandboxId, firstHost: 2, lastHost: 254, requestedHost, maxSubnetIndex: 100 });

  it("assigns subnets from 1, idempotently, and reuses the lowest freed index", () => {
    expect(book.assignSubnet("u1", 10)).toBe(1);
    expect(book.assignSubnet("u2", 10)).toBe(2);
    expect(book.assignSubnet("u1", 10)).toBe(1);
    expect(book.assignSubnet("u3", 10)).toBe(3);
    book.forgetUser("u2");
    expect(book.assignSubnet("u4", 10)).toBe(2);
    expect(book.assignSubnet("u5", 10)).toBe(4);
  });

  it("fails with ResourceExhausted past max_index", () => {
    book.assignSubnet("a", 2);
    book.assignSubnet("b", 2);
    expect(codeOf(() => book.assignSubnet("c", 2))).toBe(Code.ResourceExhausted);
  });

  it("reserves the lowest free host, idempotently per sandbox, and reuses released hosts", () => {
    expect(reserve("u", "s1").host).toBe(2);
    expect(reserve("u", "s2").host).toBe(3);
    expect(reserve("u", "s1").host).toBe(2);
    expect(reserve("u", "s3").host).toBe(4);
    expect(book.release("s2")).toBe(true);
    expect(book.release("s2")).toBe(false);
    expect(reserve("u", "s4").host).toBe(3);
    expect(reserve("other", "t1")).toMatchObject({ subnet_index: 2, host: 2 });
    expect(book.list().map((a) => [a.sandbox_id, a.subnet_index, a.host])).toEqual([
      ["s1", 1, 2],
      ["s4", 1, 3],
      ["s3", 1, 4],
      ["t1", 2, 2],
    ]);
  });

  it("honours requested_host and refuses one in use", () => {
    expect(reserve("u", "s1", 77).host).toBe(77);
    expect(codeOf(() => reserve("u", "s2", 77))).toBe(Code.AlreadyExists);
    expect(codeOf(() => reserve("u", "s1", 78))).toBe(Code.FailedPrecondition);
    expect(codeOf(() => reserve("u", "s3", 255))).toBe(Code.InvalidArgument);
  });

  it("runs out with ResourceExhausted when the user's range is full", () => {
    const small = (id: string) =>
      book.reserve({
        userId: "u",
        sandboxId: id,
        firstHost: 2,
        lastHost: 4,
        requestedHost: 0,
        maxSubnetIndex: 0,
      });
    expect([small("a").host, small("b").host, small("c").host]).toEqual([2, 3, 4]);
    expect(codeOf(() => small("d"))).toBe(Code.ResourceExhausted);
    // Nothing half-created: the failed sandbox holds nothing.
    expect(book.list().some((a) => a.sandbox_id === "d")).toBe(false);
  });

  it("refuses to forget a user that still holds addresses", () => {
    reserve("u", "s1");
    expect(codeOf(() => book.forgetUser("u"))).toBe(Code.FailedPrecondition);
    book.release("s1");
    book.forgetUser("u");
    expect(book.subnetOf("u")).toBeUndefined();
  });
});
