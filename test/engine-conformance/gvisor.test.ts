import { defineEngineConformance } from "./conformance-suite.js";
import { gvisorFactory } from "./gvisor-factory.js";

// Real runsc, namespaces, cgroups and the real agent, inside a stand-in host netns.
defineEngineConformance(gvisorFactory);
