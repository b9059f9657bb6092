// `@bhatti/service-vmm/engine`: the engine contract (plain data, no runsc notions), its closed error
// codes and spec validation, for the engine-agnostic conformance suite and other tests.
export type {
  AdoptionReport,
  AgentEndpoint,
  Engine,
  EngineEvent,
  EngineEventKind,
  EngineHealth,
  EnsureHotResult,
  SandboxFileSpec,
  SandboxInfo,
  SandboxSpec,
  SandboxStats,
  SandboxStatus,
  StartOptions,
  ThermalState,
} from "./engine.js";
export { EngineError, type EngineErrorCode, isEngineError } from "./engine-error.js";
export { validateSpec } from "./spec-validation.js";
