import { ThermalState, VmmSandboxStatus } from "../gen/bhatti/v1/vmm_pb.js";

/**
 * The lowercase names the REST API, the store rows, events and the services' domain code use
 * for the proto enums. UNSPECIFIED has no name: callers choose what an absent value means.
 */
export type ThermalName = "hot" | "warm" | "cold";
export type VmmStatusName = "running" | "stopped" | "unknown";

const thermalByName = {
  hot: ThermalState.HOT,
  warm: ThermalState.WARM,
  cold: ThermalState.COLD,
} as const satisfies Record<ThermalName, ThermalState>;

const statusByName = {
  running: VmmSandboxStatus.RUNNING,
  stopped: VmmSandboxStatus.STOPPED,
  unknown: VmmSandboxStatus.UNKNOWN,
} as const satisfies Record<VmmStatusName, VmmSandboxStatus>;

const thermalNames = new Map<ThermalState, ThermalName>(
  Object.entries(thermalByName).map(([name, state]) => [state, name as ThermalName]),
);
const statusNames = new Map<VmmSandboxStatus, VmmStatusName>(
  Object.entries(statusByName).map(([name, status]) => [status, name as VmmStatusName]),
);

export function thermalStateOf(name: ThermalName): ThermalState {
  return thermalByName[name];
}

/** The name of a thermal state; undefined for UNSPECIFIED or a value this version does not know. */
export function thermalName(state: ThermalState): ThermalName | undefined {
  return thermalNames.get(state);
}

export function vmmStatusOf(name: VmmStatusName): VmmSandboxStatus {
  return statusByName[name];
}

/** The name of a vmm status; undefined for UNSPECIFIED or a value this version does not know. */
export function vmmStatusName(status: VmmSandboxStatus): VmmStatusName | undefined {
  return statusNames.get(status);
}
