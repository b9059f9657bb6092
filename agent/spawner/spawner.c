// bhatti-spawner: the guest agent's resident process starter.
//
// Why: the agent is Node, and libuv starts a child with a plain fork() of Node's large
// address space; under gVisor a fork copies the whole map, so every exec paid about one
// extra fork+exec. This small static program is forked once by the agent and then does
// every fork+exec itself (its own map is tiny).
//
// Usage: bhatti-spawner STDIO_SOCKET [POOL_SIZE GENERATION]
//   fd 0: requests from the agent, fd 1: replies to the agent (both ends of socketpairs
//   libuv made), fd 2: the agent's stderr (diagnostics only).
//
// Request (agent → spawner): u32 length of what follows, then
//   u32 id, u32 flags, u32 uid, u32 gid, u32 argc, u32 envc,
//   [u32 slot0, u32 slot1, u32 slot2 if flags has 4],
//   NUL-terminated strings: path, cwd, output file, argv[argc], env[envc].
//   flags: 1 = drop to uid/gid (setgroups(0) first, as libuv does),
//          2 = detached: stdin /dev/null, stdout and stderr the output file (opened O_WRONLY,
//              the agent created and truncated it), otherwise
//          4 = pooled: the child's fds 0, 1, 2 are the pooled connections numbered slot0..2
//              (below), otherwise
//          8 = stdin /dev/null: only streams 1 and 2 connect back (not with 2 or 4), otherwise
//              connect-back: the spawner connects three times to STDIO_SOCKET and sends
//              u32 id, u32 stream (0 stdin, 1 stdout, 2 stderr) on each; the connections
//              become the child's fds 0, 1, 2 (AF_UNIX stream sockets, as libuv's pipes are).
// Pool (POOL_SIZE > 0): the spawner keeps up to POOL_SIZE connections to STDIO_SOCKET made
// ahead of time, each opened with u32 slot, u32 3, u32 GENERATION (slot numbers are the
// spawner's, never reused in its life; GENERATION is the agent's number for this start, so a
// connection of an earlier spawner is recognised). The agent holds them and names three in a
// pooled request: an exec then makes no connection on its way. The spawner tops the pool up
// when no attached command runs (or at once when fewer than 3 are left), always after the
// requests waiting on fd 0; a pooled connection the agent closed is dropped (poll sees EOF).
// Replies (spawner → agent): 16 bytes, u32 type, u32 id, i32 pid, i32 value:
//   0 READY    once, at start
//   1 STARTED  the child exec'd: pid (it leads its own session and process group)
//   2 FAILED   the child could not start: value = errno (chdir, setuid, execve...)
//   3 EXITED   the child was reaped: pid, value = wait status
//   4 BROKEN   the spawner could not prepare the start (stdio connect...): value = errno
// All integers little-endian (the host's order; the agent and spawner share a kernel).
//
// Children start with vfork (no copy of the spawner's map; the spawner waits until they exec).
// Every fd the spawner opens is O_CLOEXEC and it closes whatever it inherited above fd 2 at
// start, so a child inherits exactly fds 0, 1, 2. If the agent goes away (EOF on fd 0) the
// spawner exits; its running children are left alone (they reparent to PID 1, tini).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

enum { REPLY_READY = 0, REPLY_STARTED = 1, REPLY_FAILED = 2, REPLY_EXITED = 3, REPLY_BROKEN = 4 };
enum { FLAG_CREDENTIALS = 1, FLAG_DETACHED = 2, FLAG_POOLED = 4, FLAG_STDIN_NULL = 8 };
enum { STREAM_POOLED = 3 };
#define MAX_POOL 64
#define MAX_REQUEST (64u << 20)

static const char *stdio_socket;
static struct sockaddr_un stdio_addr;
static socklen_t stdio_addr_len;

// Children started and not yet reaped: pid → request id, for EXITED.
struct running {
  pid_t pid;
  uint32_t id;
  int attached;
};
static struct running *running;
static size_t running_count, running_cap, attached_running;

// Pre-connected stdio connections: slot number → fd.
struct pooled {
  uint32_t slot;
  int fd;
};
static struct pooled pool[MAX_POOL];
static size_t pool_count, pool_target;
static uint32_t pool_generation, next_slot;
// A top-up connect failed: no more tries until the next request (no busy loop on a dead socket).
static int pool_stalled;

static void die(const char *what) {
  dprintf(2, "bhatti-spawner: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static void reply(uint32_t type, uint32_t id, int32_t pid, int32_t value) {
  uint32_t msg[4] = {type, id, (uint32_t)pid, (uint32_t)value};
  // The agent is gone if this fails; EOF on fd 0 ends the loop right after.
  (void)write_all(1, msg, sizeof msg);
}

// close_range(2) is EINVAL in gVisor: fall back to /proc/self/fd, then to a plain loop.
static void close_inherited_fds(void) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, 3u, ~0u, 0u) == 0) return;
#endif
  DIR *dir = opendir("/proc/self/fd");
  if (dir != NULL) {
    int own = dirfd(dir);
    int fds[1024];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL && n < sizeof fds / sizeof fds[0]) {
      int fd = atoi(e->d_name);
      if (fd > 2 && fd != own) fds[n++] = fd;
    }
    closedir(dir);
    for (size_t i = 0; i < n; i++) close(fds[i]);
    return;
  }
  long max = sysconf(_SC_OPEN_MAX);
  for (long fd = 3; fd < (max > 0 ? max : 65536); fd++) close((int)fd);
}

// A connection to STDIO_SOCKET that has sent `header` (`words` u32s); -1 with errno set on failure.
static int dial_stdio(const uint32_t *header, size_t words) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int ok;
  while ((ok = connect(fd, (struct sockaddr *)&stdio_addr, stdio_addr_len)) < 0 && errno == EINTR) {
  }
  if (ok < 0 || write_all(fd, header, words * sizeof *header) < 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

// One connect-back stdio socket for request `id`; -1 with errno set on failure.
static int connect_stdio(uint32_t id, uint32_t stream) {
  uint32_t header[2] = {id, stream};
  return dial_stdio(header, 2);
}

// One more pooled connection; 0, or -1 with errno set.
static int pool_add(void) {
  uint32_t header[3] = {next_slot, STREAM_POOLED, pool_generation};
  int fd = dial_stdio(header, 3);
  if (fd < 0) return -1;
  pool[pool_count++] = (struct pooled){next_slot++, fd};
  return 0;
}

// Removes pooled connection `slot` and returns its fd, or -1 if the pool has no such slot.
static int pool_take(uint32_t slot) {
  for (size_t i = 0; i < pool_count; i++) {
    if (pool[i].slot != slot) continue;
    int fd = pool[i].fd;
    pool[i] = pool[--pool_count];
    return fd;
  }
  return -1;
}

struct request {
  uint32_t id, flags, uid, gid;
  uint32_t slots[3];
  const char *path, *cwd, *output;
  char **argv, **envp;
};

// Set by a vfork child that could not become the command (the parent sees it once it resumes).
static volatile int exec_errno;

// In the vfork child (sharing the spawner's memory until it execs or exits): becomes the
// command, or sets exec_errno and exits 127. Only syscalls and stack variables here.
static void child_exec(const struct request *r, const int stdio[3]) {
  // Signal state as a fresh process would have it: the spawner ignores SIGPIPE (every other
  // disposition was reset to default at its start) and blocks SIGCHLD for its signalfd; both
  // survive exec otherwise.
  signal(SIGPIPE, SIG_DFL);
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, NULL);

  int fds[3] = {stdio[0], stdio[1], stdio[2]};
  if (r->flags & FLAG_STDIN_NULL) {
    fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fds[0] < 0) goto fail;
  }
  if (r->flags & FLAG_DETACHED) {
    fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    fds[1] = open(r->output, O_WRONLY | O_CLOEXEC);
    fds[2] = fds[1];
    if (fds[0] < 0 || fds[1] < 0) goto fail;
  }
  if (setsid() < 0) goto fail;
  // Our fds 0..2 are the agent's pipes and stderr; every fd being placed is > 2 (opened
  // after them, and the spawner never closes 0..2), so no dup2 overwrites a later source.
  for (int i = 0; i < 3; i++) {
    if (dup2(fds[i], i) < 0) goto fail;
  }
  if (r->flags & FLAG_CREDENTIALS) {
    // As libuv: supplementary groups are dropped (best effort), then gid, then uid. Raw
    // syscalls: glibc's wrappers would synchronise "all threads" through shared state.
    (void)syscall(SYS_setgroups, 0, NULL);
    if (syscall(SYS_setgid, (gid_t)r->gid) < 0) goto fail;
    if (syscall(SYS_setuid, (uid_t)r->uid) < 0) goto fail;
  }
  if (chdir(r->cwd) < 0) goto fail;
  execve(r->path, r->argv, r->envp);
  if (errno == ENOEXEC) {
    // execvp's fallback (what libuv's children get): a file without a #! line runs in sh.
    size_t argc = 0;
    while (r->argv[argc] != NULL) argc++;
    char *sh_argv[argc + 2];
    sh_argv[0] = "/bin/sh";
    sh_argv[1] = (char *)r->path;
    for (size_t i = 1; i <= argc; i++) sh_argv[i + 1] = r->argv[i];
    execve("/bin/sh", sh_argv, r->envp);
    errno = ENOEXEC;
  }
fail:
  exec_errno = errno != 0 ? errno : EINVAL;
  _exit(127);
}

static void start(struct request *r) {
  int stdio[3] = {-1, -1, -1};
  pool_stalled = 0;
  if (r->flags & FLAG_POOLED) {
    for (int i = 0; i < 3; i++) stdio[i] = pool_take(r->slots[i]);
    if (stdio[0] < 0 || stdio[1] < 0 || stdio[2] < 0) {
      // The agent named a connection this spawner does not hold: a bug; nothing starts.
      for (int i = 0; i < 3; i++)
        if (stdio[i] >= 0) close(stdio[i]);
      reply(REPLY_BROKEN, r->id, 0, EBADF);
      return;
    }
  } else if (!(r->flags & FLAG_DETACHED)) {
    for (uint32_t i = (r->flags & FLAG_STDIN_NULL) ? 1 : 0; i < 3; i++) {
      stdio[i] = connect_stdio(r->id, i);
      if (stdio[i] < 0) {
        int err = errno;
        for (uint32_t j = 0; j < i; j++)
          if (stdio[j] >= 0) close(stdio[j]);
        reply(REPLY_BROKEN, r->id, 0, err);
        return;
      }
    }
  }
  // vfork: no copy of the spawner's map, and the spawner resumes only once the child exec'd
  // (or gave up), so its exec errno needs no pipe.
  exec_errno = 0;
  pid_t pid = vfork();
  if (pid == 0) child_exec(r, stdio);
  int fork_errno = errno;
  for (int i = 0; i < 3; i++)
    if (stdio[i] >= 0) close(stdio[i]);
  if (pid < 0) {
    reply(REPLY_BROKEN, r->id, 0, fork_errno);
    return;
  }
  if (exec_errno != 0) {
    // Reaped here, never reported as EXITED: the agent only hears FAILED.
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    reply(REPLY_FAILED, r->id, 0, exec_errno);
    return;
  }
  if (running_count == running_cap) {
    running_cap = running_cap == 0 ? 64 : running_cap * 2;
    running = realloc(running, running_cap * sizeof *running);
    if (running == NULL) die("realloc");
  }
  int attached = !(r->flags & FLAG_DETACHED);
  running[running_count++] = (struct running){pid, r->id, attached};
  attached_running += (size_t)attached;
  reply(REPLY_STARTED, r->id, pid, 0);
}

static void reap(void) {
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (size_t i = 0; i < running_count; i++) {
      if (running[i].pid != pid) continue;
      reply(REPLY_EXITED, running[i].id, pid, status);
      attached_running -= (size_t)running[i].attached;
      running[i] = running[--running_count];
      break;
    }
  }
}

// Splits `count` NUL-terminated strings off [*p, end) into a NULL-terminated array.
static char **take_strings(char **p, char *end, uint32_t count) {
  char **out = calloc((size_t)count + 1, sizeof(char *));
  if (out == NULL) return NULL;
  for (uint32_t i = 0; i < count; i++) {
    char *nul = memchr(*p, 0, (size_t)(end - *p));
    if (nul == NULL) {
      free(out);
      return NULL;
    }
    out[i] = *p;
    *p = nul + 1;
  }
  return out;
}

static int parse(char *body, uint32_t len, struct request *r) {
  if (len < 24) return -1;
  uint32_t h[6];
  memcpy(h, body, sizeof h);
  r->id = h[0];
  r->flags = h[1];
  r->uid = h[2];
  r->gid = h[3];
  char *p = body + 24, *end = body + len;
  if ((r->flags & FLAG_STDIN_NULL) && (r->flags & (FLAG_DETACHED | FLAG_POOLED))) return -1;
  if (r->flags & FLAG_POOLED) {
    if (len < 36 || (r->flags & FLAG_DETACHED)) return -1;
    memcpy(r->slots, p, sizeof r->slots);
    p += sizeof r->slots;
  }
  char **fixed = take_strings(&p, end, 3);
  if (fixed == NULL) return -1;
  r->path = fixed[0];
  r->cwd = fixed[1];
  r->output = fixed[2];
  free(fixed);
  r->argv = take_strings(&p, end, h[4]);
  r->envp = r->argv == NULL ? NULL : take_strings(&p, end, h[5]);
  if (r->envp == NULL || h[4] == 0) {
    free(r->argv);
    free(r->envp);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2 && argc != 4) {
    dprintf(2, "usage: bhatti-spawner STDIO_SOCKET [POOL_SIZE GENERATION]\n");
    return 2;
  }
  if (argc == 4) {
    pool_target = strtoul(argv[2], NULL, 10);
    if (pool_target > MAX_POOL) pool_target = MAX_POOL;
    pool_generation = (uint32_t)strtoul(argv[3], NULL, 10);
  }
  close_inherited_fds();
  stdio_socket = argv[1];
  // The socket's directory is pinned by an fd and reached through /proc/self/fd: whatever
  // happens to its path later (a rename in a /tmp without the sticky bit), connects go to the
  // agent's own directory (0700, root's) and never to a socket someone else put in its place.
  const char *slash = strrchr(stdio_socket, '/');
  if (slash == NULL || slash == stdio_socket) {
    dprintf(2, "bhatti-spawner: STDIO_SOCKET must be an absolute path below a directory\n");
    return 2;
  }
  char dir[4096];
  size_t dir_len = (size_t)(slash - stdio_socket);
  if (dir_len >= sizeof dir) {
    dprintf(2, "bhatti-spawner: socket path too long\n");
    return 2;
  }
  memcpy(dir, stdio_socket, dir_len);
  dir[dir_len] = 0;
  int dirfd_pinned = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dirfd_pinned < 0) die("open socket directory");
  stdio_addr.sun_family = AF_UNIX;
  int n = snprintf(stdio_addr.sun_path, sizeof stdio_addr.sun_path, "/proc/self/fd/%d%s", dirfd_pinned, slash);
  if (n < 0 || (size_t)n >= sizeof stdio_addr.sun_path) {
    dprintf(2, "bhatti-spawner: socket path too long\n");
    return 2;
  }
  stdio_addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);

  // Whatever was ignored when we were started stays ignored across exec: reset it all once, so
  // a child only has SIGPIPE to undo.
  for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) die("sigprocmask");
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) die("signalfd");

  reply(REPLY_READY, 0, getpid(), 0);

  size_t cap = 1 << 16, have = 0;
  char *buf = malloc(cap);
  if (buf == NULL) die("malloc");
  struct pollfd pfd[2 + MAX_POOL] = {{.fd = 0, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
  for (;;) {
    // The pooled connections are watched too: the agent closing one (EOF) drops it.
    for (size_t i = 0; i < pool_count; i++) pfd[2 + i] = (struct pollfd){.fd = pool[i].fd, .events = POLLIN};
    nfds_t watched = (nfds_t)(2 + pool_count);
    int top_up = !pool_stalled && pool_count < pool_target && (attached_running == 0 || pool_count < 3);
    int ready = poll(pfd, watched, top_up ? 0 : -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (ready == 0) {
      // Nothing to do: one more pooled connection (then look at fd 0 again).
      if (pool_add() < 0) pool_stalled = 1;
      continue;
    }
    for (size_t i = watched - 2; i-- > 0;) {
      if (!pfd[2 + i].revents) continue;
      // pfd[2 + i] is pool[i]: removal from the end down keeps the lower indexes valid.
      close(pool[i].fd);
      pool[i] = pool[--pool_count];
    }
    if (pfd[1].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {
      }
      reap();
    }
    if (!pfd[0].revents) continue;
    ssize_t n = read(0, buf + have, cap - have);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return 0;  // The agent is gone.
    have += (size_t)n;
    // Every complete request in the buffer, in order.
    size_t off = 0, need = 0;
    while (have - off >= 4) {
      uint32_t len;
      memcpy(&len, buf + off, 4);
      if (len > MAX_REQUEST) {
        dprintf(2, "bhatti-spawner: request of %u bytes\n", len);
        return 1;
      }
      if (have - off - 4 < len) {
        need = (size_t)len + 4;
        break;
      }
      struct request r;
      if (parse(buf + off + 4, len, &r) < 0) {
        dprintf(2, "bhatti-spawner: malformed request\n");
        return 1;
      }
      start(&r);
      free(r.argv);
      free(r.envp);
      off += 4 + len;
      // Children that finished meanwhile are reported before the next start.
      reap();
    }
    memmove(buf, buf + off, have - off);
    have -= off;
    if (need > cap || have == cap) {
      // A request larger than the buffer: grow to hold it whole.
      while (cap < need || cap == have) cap *= 2;
      buf = realloc(buf, cap);
      if (buf == NULL) die("realloc");
    }
  }
}
