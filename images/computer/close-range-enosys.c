/*
 * gVisor answers close_range(fd, ~0U, flags) with EINVAL, and GLib 2.74 (Debian 12) then
 * fails every g_spawn ("Failed to close file descriptor for child process"), so the XFCE
 * session could start none of its programs. Preloaded into the desktop session, this makes
 * close_range report ENOSYS, which GLib and every libc user treat as an older kernel and fall
 * back to closing descriptors one by one.
 */
#include <errno.h>

int close_range(unsigned int first, unsigned int last, int flags) {
  (void)first;
  (void)last;
  (void)flags;
  errno = ENOSYS;
  return -1;
}
