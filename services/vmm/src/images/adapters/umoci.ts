import { type ToolRunOptions, runTool } from "./tool-process.js";

/** umoci: applies an OCI image's layers in order (whiteouts, owners, modes, xattrs) as root. */
export interface Umoci {
  /** Unpacks `<layout>:<tag>` into `rootfs` (which must not exist). */
  unpack(layout: string, tag: string, rootfs: string, options: ToolRunOptions): Promise<void>;
}

export function createUmoci(path = "umoci"): Umoci {
  return {
    async unpack(layout, tag, rootfs, options) {
      await runTool(path, ["raw", "unpack", "--image", `${layout}:${tag}`, rootfs], options);
    },
  };
}
