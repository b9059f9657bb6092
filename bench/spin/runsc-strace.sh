#!/bin/sh
# runsc with the guest's syscalls logged (for SPIN_RUNSC in idle-after-restore.ts): one debug log
# per runsc command in $SPIN_DEBUG_DIR (default /tmp/spin-dbg/logs); the restored sandbox's is the
# second *.boot. file. Output is ~60 MB per run.
dir="${SPIN_DEBUG_DIR:-/tmp/spin-dbg/logs}"
mkdir -p "$dir"
exec "${SPIN_REAL_RUNSC:-/usr/local/lib/bhatti/runsc}" --debug "--debug-log=$dir/%TIMESTAMP%.%COMMAND%." --strace \
  --strace-syscalls=epoll_pwait,epoll_wait,epoll_ctl,read,recvmsg,recvfrom,close,accept4,shutdown "$@"
