// The contract's shared vocabulary: id and name rules, the names of the proto enums. Also a
// subpath of its own (`@bhatti/proto/vocabulary`) for callers that load no generated service.
export { ID_RULE, isSandboxId, isUserId } from "./ids.js";
export { ENV_NAME_RULE, NAME_RULE, SANDBOX_NAME_RULE } from "./names.js";
export {
  thermalName,
  thermalStateOf,
  vmmStatusName,
  vmmStatusOf,
  type ThermalName,
  type VmmStatusName,
} from "./enum-names.js";
export {
  MAX_VOLUMES_PER_SANDBOX,
  normalizeVolumeMount,
  parseSizeMb,
  parseVolumeFlag,
  volumeMountProblem,
} from "./volume-rules.js";
