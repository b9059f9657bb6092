import type { ServiceImpl } from "@connectrpc/connect";
import type { StoreService } from "@bhatti/proto";
import type { AddressBook, SandboxAddressRow } from "../domain/addresses.js";

type AddressMethods = Pick<
  ServiceImpl<typeof StoreService>,
  "assignSubnet" | "reserveAddress" | "releaseAddress" | "listAddresses"
>;

const toProto = (row: SandboxAddressRow) => ({
  sandboxId: row.sandbox_id,
  userId: row.user_id,
  subnetIndex: row.subnet_index,
  host: row.host,
});

/** Network addressing RPCs, used by the network service. */
export function createAddressHandlers(addresses: AddressBook): AddressMethods {
  return {
    assignSubnet: (req) => ({ subnetIndex: addresses.assignSubnet(req.userId, req.maxIndex) }),
    reserveAddress: (req) => ({
      address: toProto(
        addresses.reserve({
          userId: req.userId,
          sandboxId: req.sandboxId,
          firstHost: req.firstHost,
          lastHost: req.lastHost,
          requestedHost: req.requestedHost,
          maxSubnetIndex: req.maxSubnetIndex,
        }),
      ),
    }),
    releaseAddress: (req) => ({ released: addresses.release(req.sandboxId) }),
    listAddresses: () => ({ addresses: addresses.list().map(toProto) }),
  };
}
