import { Code, ConnectError } from "@connectrpc/connect";
import { StoreService } from "@bhatti/proto";
import { type ServiceClient, createServiceClient } from "@bhatti/runtime";
import { type AddressPlan, FIRST_HOST, LAST_HOST } from "../domain/address-plan.js";

export interface ReservedAddress {
  sandboxId: string;
  userId: string;
  subnetIndex: number;
  host: number;
}

/** The store's address table, seen through the pool. */
export interface Addressing {
  reserve(userId: string, sandboxId: string, requestedHost: number): Promise<ReservedAddress>;
  release(sandboxId: string): Promise<boolean>;
  list(): Promise<ReservedAddress[]>;
  close(): void;
}

export function createStoreAddressing(storeSocket: string, plan: AddressPlan, timeoutMs: number): Addressing {
  const store: ServiceClient<typeof StoreService> = createServiceClient(StoreService, storeSocket, {
    defaultTimeoutMs: timeoutMs,
  });
  const toReserved = (a: { sandboxId: string; userId: string; subnetIndex: number; host: number }) => ({
    sandboxId: a.sandboxId,
    userId: a.userId,
    subnetIndex: a.subnetIndex,
    host: a.host,
  });
  return {
    async reserve(userId, sandboxId, requestedHost) {
      try {
        const res = await store.client.reserveAddress({
          userId,
          sandboxId,
          firstHost: FIRST_HOST,
          lastHost: LAST_HOST,
          requestedHost,
          maxSubnetIndex: plan.maxIndex,
        });
        if (res.address === undefined) throw new ConnectError("store returned no address", Code.Internal);
        return toReserved(res.address);
      } catch (e) {
        const err = ConnectError.from(e);
        // Name the pool, so an operator knows which setting to widen.
        if (err.code === Code.ResourceExhausted) {
          throw new ConnectError(`address pool ${plan.poolText} exhausted: ${err.rawMessage}`, err.code);
        }
        throw err;
      }
    },
    async release(sandboxId) {
      return (await store.client.releaseAddress({ sandboxId })).released;
    },
    async list() {
      return (await store.client.listAddresses({})).addresses.map(toReserved);
    },
    close: () => store.close(),
  };
}
