// `@bhatti/gateway`: the gateway run in-process (tests start it on a loopback port with their own
// config) and the units tests exercise on their own: API-key auth, input rules, the OpenAPI document.
// The product starts the gateway from main.ts; nothing else in the product imports it.
export { type ApiKeyLookup, createApiKeyAuthenticator, keyDigest } from "./auth/api-key-authenticator.js";
export { createStoreApiKeyLookup } from "./auth/store-api-key-lookup.js";
export { openApiJson } from "./openapi/documented-routes.js";
export { checkSandboxName } from "./sandboxes/create-input.js";
export { effectiveExecTimeoutSec } from "./sandboxes/exec-timeout.js";
export { type Gateway, createGateway } from "./server.js";
export type { ServiceClients } from "./service-clients.js";
