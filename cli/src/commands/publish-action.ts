import { PublishService } from "@bhatti/proto/v1/publish_pb";
import { publishedPortJson } from "@bhatti/proto/rest-json";
import { createGatewayClient } from "../gateway-client.js";
import type { GlobalOptions } from "../global-options.js";
import { emit, printTable } from "../output.js";

export async function runPublish(
  options: GlobalOptions,
  sandbox: string,
  port: number,
  alias: string | undefined,
  isPrivate: boolean,
): Promise<void> {
  const { client } = createGatewayClient(PublishService, options);
  const { published } = await client.publish({ sandbox, port, alias: alias ?? "", private: isPrivate });
  const json = published === undefined ? {} : publishedPortJson(published);
  emit(options, json, () => process.stdout.write(`${published?.url ?? ""}\n`));
}

export async function runPublishList(options: GlobalOptions, sandbox: string): Promise<void> {
  const { client } = createGatewayClient(PublishService, options);
  const { published } = await client.listPublished({ sandbox });
  const rows = published.map(publishedPortJson);
  emit(options, rows, () =>
    printTable(
      ["PORT", "ALIAS", "PRIVATE", "URL"],
      rows.map((r) => [String(r.port), r.alias, r.private ? "yes" : "no", r.url]),
    ),
  );
}

export async function runUnpublish(options: GlobalOptions, sandbox: string, port: number): Promise<void> {
  const { client } = createGatewayClient(PublishService, options);
  await client.unpublish({ sandbox, port });
  // The REST DELETE answers 204 with no body; --json prints what was removed.
  emit(options, { sandbox, port, status: "unpublished" }, () =>
    process.stdout.write(`unpublished port ${port} of ${sandbox}\n`),
  );
}
