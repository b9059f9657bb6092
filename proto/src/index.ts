// Generated descriptors and message types for every bhatti service (see buf.gen.yaml).
export * from "./gen/bhatti/v1/health_pb.js";
export * from "./gen/bhatti/v1/store_pb.js";
export * from "./gen/bhatti/v1/network_pb.js";
export * from "./gen/bhatti/v1/thermal_state_pb.js";
export * from "./gen/bhatti/v1/vmm_pb.js";
export * from "./gen/bhatti/v1/thermal_pb.js";
export * from "./gen/bhatti/v1/admin_pb.js";
export * from "./gen/bhatti/v1/user_pb.js";
export * from "./gen/bhatti/v1/secret_pb.js";
export * from "./gen/bhatti/v1/sandbox_pb.js";
export * from "./gen/bhatti/v1/vmm_snapshot_pb.js";
export * from "./gen/bhatti/v1/snapshot_pb.js";
export * from "./gen/bhatti/v1/volume_pb.js";
export * from "./gen/bhatti/v1/vmm_volume_pb.js";
export * from "./gen/bhatti/v1/publish_pb.js";
export * from "./gen/bhatti/v1/image_pb.js";
// The public REST JSON shapes, shared by the gateway and `bhatti --json`.
export * from "./rest-json.js";

export * from "./vocabulary/index.js";
export * from "./gen/bhatti/v1/share_store_pb.js";
export * from "./gen/bhatti/v1/share_pb.js";
