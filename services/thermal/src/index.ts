export { createFailureCounters, type FailureCounters } from "./domain/failure-counters.js";
export { createPinRegistry, type Pin, type PinRegistry } from "./domain/pin-registry.js";
export {
  type AgentActivity,
  type Decision,
  type PolicyInput,
  type Thermal,
  type ThermalThresholds,
  decide,
  decideAfterProbe,
} from "./domain/thermal-policy.js";
