// OS errors in the words Go's os package used in v1 ("open /x: no such file or directory"),
// because hosts and people match on them.

const descriptions: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOTDIR: "not a directory",
  EISDIR: "is a directory",
  EEXIST: "file exists",
  ENOSPC: "no space left on device",
  EROFS: "read-only file system",
  ELOOP: "too many levels of symbolic links",
  ENAMETOOLONG: "file name too long",
  EBUSY: "device or resource busy",
  EXDEV: "invalid cross-device link",
  ENOTEMPTY: "directory not empty",
  EMFILE: "too many open files",
  EINVAL: "invalid argument",
  EIO: "input/output error",
  EDQUOT: "disk quota exceeded",
  EFBIG: "file too large",
};

export function osErrorText(op: string, path: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const description = code !== undefined ? descriptions[code] : undefined;
  if (description !== undefined) return `${op} ${path}: ${description}`;
  return `${op} ${path}: ${(err as Error)?.message ?? String(err)}`;
}
