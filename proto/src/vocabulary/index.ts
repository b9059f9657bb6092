// The contract's shared vocabulary: the names of the proto enums.
export {
  thermalName,
  thermalStateOf,
  vmmStatusName,
  vmmStatusOf,
  type ThermalName,
  type VmmStatusName,
} from "./enum-names.js";
