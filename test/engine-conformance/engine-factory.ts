import type { AgentClient } from "@bhatti/agent-client";
import type { Engine, SandboxSpec } from "@bhatti/service-vmm/engine";

/**
 * What the conformance suite needs from an engine under test. One factory per engine
 * (gvisor runs here; a Firecracker factory plugs in the same way on KVM hosts).
 */
export interface EngineHarness {
  readonly engine: Engine;
  /** An image every engine under test has (small, for speed). */
  readonly image: string;
  /** A full distribution image (with sudo, apt...), when one is installed on this machine. */
  readonly distroImage: string | undefined;
  /**
   * An agent client for a sandbox (the suite closes it). `pool` keeps pre-authenticated spare
   * connections open, as the gateway's clients do.
   */
  agent(id: string, options?: { pool?: boolean }): Promise<AgentClient>;
  /** A second engine instance over the same state, as after a vmm restart (adopt not yet called). */
  reopen(): Promise<Engine>;
  /** Everything the engine may have left behind, by kind; all must be empty after the suite. */
  leaks(): Promise<Record<string, string[]>>;
  /** Corrupts the sandbox's cold snapshot and returns a function that puts it back. */
  corruptSnapshot(id: string): () => void;
  dispose(): Promise<void>;
}

export interface EngineFactory {
  readonly name: string;
  /** Why the engine cannot run here, or undefined when it can. */
  unavailable(): string | undefined;
  create(): Promise<EngineHarness>;
}

let counter = 0;

/** Every sandbox id the suite handed out (the leak check looks for their namespaces). */
export const usedSandboxIds = new Set<string>();

/** A spec with a fresh id and name; overrides win. */
export function testSpec(image: string, overrides: Partial<SandboxSpec> = {}): SandboxSpec {
  counter++;
  const id = `${process.pid.toString(16).padStart(6, "0").slice(-6)}${Date.now().toString(16).slice(-6)}${counter.toString(16).padStart(4, "0")}`;
  usedSandboxIds.add(overrides.id ?? id);
  return {
    id,
    name: `suite-${counter}`,
    image,
    cpus: 1,
    memoryMb: 512,
    pidsLimit: 0,
    env: {},
    secrets: {},
    files: [],
    hostname: "",
    userId: "u-suite",
    ...overrides,
  };
}
