/** The bhatti release every process reports in its Health. */
export const BHATTI_VERSION = "0.1.0";
