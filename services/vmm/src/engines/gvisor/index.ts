// `@bhatti/service-vmm/gvisor`: the gVisor engine, built in-process by the conformance suite, the
// crash tests and the engine bench, plus the on-disk names those tests inspect.
export { CHECKPOINT_COMPLETE, QUARANTINE_DIR } from "./adoption-files.js";
export { type GvisorEngine, type GvisorEngineOptions, createGvisorEngine } from "./gvisor-engine.js";
export { readMeminfoMb } from "./host-admission.js";
export { type SandboxLayout, sandboxLayout } from "./layout.js";
export { waitAgentAnswers } from "./agent-answers.js";
