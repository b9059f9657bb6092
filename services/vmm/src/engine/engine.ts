/**
 * The contract every isolation engine implements (gvisor now, firecracker later). Callers
 * (the vmm-service's API and domain layers, the conformance suite) only see this file, so an
 * engine can be swapped without touching them. Everything here is plain data: no runsc, no
 * cgroup or Firecracker notions leak through (engine specifics go in `engineDetails`).
 */

/** hot = running; warm = frozen in memory; cold = checkpointed to disk, no processes. */
export type ThermalState = "hot" | "warm" | "cold";

/** running = hot or warm; stopped = cold; unknown = cannot be restored (destroy or force-start). */
export type SandboxStatus = "running" | "stopped" | "unknown";

export interface SandboxFileSpec {
  /** Absolute path inside the sandbox. */
  path: string;
  content: Uint8Array;
  /** Permission bits; default 0o644. */
  mode?: number;
}

/** A volume mounted into the sandbox (its host image is mounted by the engine). */
export interface SandboxVolumeSpec {
  /** 16 lowercase hex chars (the store's volume id). */
  volumeId: string;
  name: string;
  /** Absolute path inside the sandbox. */
  mount: string;
  readOnly: boolean;
}

export interface SandboxSpec {
  /** 16 lowercase hex chars, chosen by the caller. */
  id: string;
  name: string;
  /** Image name from the image registry. */
  image: string;
  /** CPU quota in cores. */
  cpus: number;
  memoryMb: number;
  /** Host task limit for the sandbox's cgroup. */
  pidsLimit: number;
  /** Size of the sandbox's own disk (its writable layer), MiB; 0 or absent = the engine default. */
  diskSizeMb?: number;
  env: Record<string, string>;
  /** Decrypted secrets, exported as environment variables. Never persisted by the engine. */
  secrets: Record<string, string>;
  files: SandboxFileSpec[];
  hostname: string;
  userId: string;
  init?: string;
  /** Volumes to bind-mount; persisted with the sandbox and re-applied by start and adoption. */
  volumes?: SandboxVolumeSpec[];
}

/** Where and how to reach the sandbox's agent (the frame protocol on TCP). */
export interface AgentEndpoint {
  host: string;
  controlPort: number;
  forwardPort: number;
  token: string;
}

export interface SandboxInfo {
  id: string;
  name: string;
  image: string;
  engine: string;
  status: SandboxStatus;
  thermal: ThermalState;
  /** Unix ms when `thermal` was entered. */
  thermalSince: number;
  createdAt: number;
  cpus: number;
  memoryMb: number;
  userId: string;
  address: string;
  gateway: string;
  agent: AgentEndpoint;
  /** Set while the restore circuit breaker is open. */
  restoreError?: string;
  engineDetails: Record<string, string>;
}

export interface SandboxStats {
  thermal: ThermalState;
  memoryBytes: number;
  memoryLimitBytes: number;
  cpuUsageNs: number;
  tasks: number;
  diskBytes: number;
}

export interface EngineHealth {
  ready: boolean;
  detail: string;
  facts: Record<string, string>;
}

export type EngineEventKind =
  | "sandbox.created"
  | "sandbox.destroyed"
  | "sandbox.adopted"
  | "thermal.pause"
  | "thermal.resume"
  | "thermal.snapshot"
  | "thermal.restore"
  | "thermal.restore_failed";

export interface EngineEvent {
  kind: EngineEventKind;
  sandboxId: string;
  at: number;
  thermal: ThermalState;
  durationMs: number;
  detail: string;
}

export interface AdoptionReport {
  /** Sandboxes found alive and taken over (hot or warm). */
  running: string[];
  /** Sandboxes with a complete checkpoint (cold). */
  cold: string[];
  /** Records that cannot be restored; marked unknown. */
  unknown: string[];
  /** Leftovers without a record that were removed (runsc containers, dirs, cgroups). */
  removed: string[];
}

export interface StartOptions {
  /** Clears the restore circuit breaker first. */
  force?: boolean;
}

export interface EnsureHotResult {
  info: SandboxInfo;
  from: ThermalState;
  wakeMs: number;
}

/**
 * Lifecycle operations on one sandbox are serialized by the engine; transitions are
 * idempotent (pause on warm, resume/start on hot, stop on cold return the current info).
 * Errors are `EngineError`s with a code the API layer maps to Connect codes.
 */
export interface Engine {
  readonly kind: string;
  /** Re-reads persisted sandboxes and takes over the ones still running. Call once at start. */
  adopt(): Promise<AdoptionReport>;
  /** Boots a sandbox; resolves once its agent answers. Releases everything on failure. */
  create(spec: SandboxSpec): Promise<SandboxInfo>;
  /**
   * Reserves a sandbox made ahead of time for this user, image and shape, if the engine keeps
   * any: the id the create must then use (the caller's record takes it). Undefined if none.
   */
  reservePooled?(request: {
    userId: string;
    image: string;
    cpus: number;
    memoryMb: number;
    diskSizeMb: number;
  }): string | undefined;
  /** Gives back a reservation whose create will not happen. */
  releasePooled?(id: string): void;
  /** Removes everything; resolves false if the sandbox did not exist. */
  destroy(id: string): Promise<boolean>;
  pause(id: string): Promise<SandboxInfo>;
  resume(id: string): Promise<SandboxInfo>;
  /**
   * Cold snapshot: memory and processes to disk, then released. `onlyIfWarm`: a sandbox found
   * hot (thawed since the caller saw it warm) is left as it is and returned.
   */
  stop(id: string, options?: { onlyIfWarm?: boolean }): Promise<SandboxInfo>;
  /** Restore from the cold snapshot; resolves once the agent answers. */
  start(id: string, options?: StartOptions): Promise<SandboxInfo>;
  /** Wakes from warm or cold; concurrent calls share one wake. */
  /** `warmOnly`: a cold sandbox is refused (failed_precondition), never restored. */
  ensureHot(id: string, options?: { warmOnly?: boolean }): Promise<EnsureHotResult>;
  /** In-memory state only; never wakes. */
  status(id: string): SandboxInfo | undefined;
  list(): SandboxInfo[];
  stats(id: string): Promise<SandboxStats>;
  agentEndpoint(id: string): AgentEndpoint;
  health(): Promise<EngineHealth>;
  /** Subscribes to lifecycle events; returns the unsubscribe function. */
  onEvent(listener: (event: EngineEvent) => void): () => void;
  /** Stops background work. Sandboxes keep running (a restarted vmm adopts them). */
  close(): Promise<void>;
}
