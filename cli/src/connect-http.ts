import {
  type DescMessage,
  type DescMethod,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  type DescService,
  type MessageInitShape,
  type MessageShape,
  create,
  fromBinary,
  toBinary,
} from "@bufbuild/protobuf";
import { type CallOptions, type TransportOptions, createConnectTransport } from "./connect-transport.js";

export type { CallOptions } from "./connect-transport.js";

/** A typed client of one service (binary protobuf) over connect-transport.ts. */
export type GatewayClient<S extends DescService> = {
  [P in keyof S["method"]]: S["method"][P] extends DescMethodUnary<infer I, infer O>
    ? (request: MessageInitShape<I>, options?: CallOptions) => Promise<MessageShape<O>>
    : S["method"][P] extends DescMethodServerStreaming<infer I, infer O>
      ? (request: MessageInitShape<I>, options?: CallOptions) => AsyncIterable<MessageShape<O>>
      : never;
};

export function createConnectHttpClient<S extends DescService>(
  service: S,
  options: TransportOptions,
): GatewayClient<S> {
  const transport = createConnectTransport(options);
  const encode = (method: DescMethod, input: MessageInitShape<DescMessage>) =>
    toBinary(method.input, create(method.input, input));

  async function* serverStreaming(
    method: DescMethod,
    input: MessageInitShape<DescMessage>,
    call?: CallOptions,
  ) {
    const path = `${service.typeName}/${method.name}`;
    for await (const data of transport.serverStream(path, "proto", encode(method, input), call)) {
      yield fromBinary(method.output, data);
    }
  }

  const client: Record<string, unknown> = {};
  for (const method of service.methods) {
    const path = `${service.typeName}/${method.name}`;
    switch (method.methodKind) {
      case "unary":
        client[method.localName] = async (input: MessageInitShape<DescMessage>, call?: CallOptions) =>
          fromBinary(method.output, await transport.unary(path, "proto", encode(method, input), call));
        break;
      case "server_streaming":
        client[method.localName] = (input: MessageInitShape<DescMessage>, call?: CallOptions) =>
          serverStreaming(method, input, call);
        break;
      default:
        // Not part of the public API; calling it is a programming error.
        client[method.localName] = () => {
          throw new Error(`${method.methodKind} is not supported by the CLI client`);
        };
    }
  }
  return client as GatewayClient<S>;
}
