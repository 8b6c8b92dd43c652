"""A seccomp filter for the bubblewrap sandbox, generated in pure Python (no libseccomp).

`build_filter` returns a classic-BPF program (an array of ``struct sock_filter``) for bubblewrap's
``--seccomp FD`` option; `filter_fd` puts it in a file descriptor to pass there. The filter is
defence in depth: the sandbox already runs commands in fresh namespaces without the host's
view of the filesystem; the filter takes away kernel interfaces that a command repairing a
repository has no use for and that widen the kernel attack surface or undo the isolation.

What is covered (x86_64 and aarch64):
- **Architecture.** A system call made through another ABI than the native one (i386 calls
  through ``int 0x80`` on x86_64, say) kills the process: the filter's syscall numbers would
  mean something else there. On x86_64, x32 calls (numbers with bit 30 set) fail with EPERM.
- **Denied outright (EPERM):** the names in `BLOCKED_SYSCALLS`: mounting and the new mount API,
  ``chroot``/``pivot_root``, namespace creation and entry (``unshare``, ``setns``), ``ptrace`` and
  cross-process memory access, kernel modules, kexec, eBPF, perf events, the kernel keyring,
  ``userfaultfd``, io_uring (its operations are not seen by seccomp), clock setting, swap, reboot,
  quotas, I/O port access, file handles (``open_by_handle_at``) and the like.
- **clone(2)** fails with EPERM when its flags ask for a new namespace (`CLONE_NAMESPACE_FLAGS`);
  ordinary fork, vfork and thread creation are allowed.
- **clone3(2)** fails with ENOSYS: its flags live in memory the filter cannot read. glibc (and
  everything else that uses clone3) then falls back to clone(2), which is checked.
- **ioctl(2)** with TIOCSTI (pushing input into a terminal) or TIOCLINUX fails with EPERM.
- **personality(2)** may only query (``0xffffffff``) or set the default persona (0); turning on
  ``ADDR_NO_RANDOMIZE``, ``READ_IMPLIES_EXEC`` and the like fails with EPERM.
- Everything else is allowed.

What is not covered:
- This is a deny list, not an allow list: a kernel bug in an allowed system call (and most are
  allowed) is reachable. Use a VM for code you consider hostile.
- Arguments behind pointers cannot be inspected (seccomp sees register values only).
- Other architectures: `build_filter` raises `UnsupportedArchitecture`; the caller runs without a
  filter there.
- Resource use, the network, and the filesystem view are the sandbox's business, not the filter's.
- Names that an architecture lacks (``iopl`` on aarch64, say) are skipped; system calls newer than
  the tables here are allowed.

The syscall tables come from the kernel's uapi headers (``asm/unistd_64.h`` for x86_64, the
``asm-generic/unistd.h`` numbering for aarch64), with the calls up to Linux 6.17 added;
tests/envs/test_seccomp.py compares them with the headers installed on the test machine.
"""

from __future__ import annotations

import fcntl
import functools
import os
import platform
import struct
from collections.abc import Sequence

__all__ = [
    "AARCH64_SYSCALLS",
    "AUDIT_ARCH",
    "BLOCKED_IOCTLS",
    "BLOCKED_SYSCALLS",
    "CLONE_NAMESPACE_FLAGS",
    "ENOSYS_SYSCALLS",
    "PERSONALITY_ALLOWED",
    "SYSCALLS",
    "X86_64_SYSCALLS",
    "UnsupportedArchitecture",
    "build_filter",
    "describe_action",
    "disassemble",
    "evaluate",
    "filter_fd",
    "native_arch",
]

# --- Kernel constants (linux/audit.h, linux/seccomp.h, linux/sched.h, asm-generic/ioctls.h) ---

#: ``seccomp_data.arch`` values: the ELF machine with the 64-bit and little-endian flags.
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
#: The audit architecture of each supported `arch` name.
AUDIT_ARCH: dict[str, int] = {"x86_64": AUDIT_ARCH_X86_64, "aarch64": AUDIT_ARCH_AARCH64}

#: Filter return values (actions). The low 16 bits of SECCOMP_RET_ERRNO are the errno.
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_LOG = 0x7FFC0000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ACTION_FULL = 0xFFFF0000
SECCOMP_RET_DATA = 0x0000FFFF
EPERM = 1
ENOSYS = 38
RET_EPERM = SECCOMP_RET_ERRNO | EPERM
RET_ENOSYS = SECCOMP_RET_ERRNO | ENOSYS

#: x32 system calls on x86_64 are the x86_64 numbers with this bit set.
X32_SYSCALL_BIT = 0x40000000

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080
#: clone(2) flags that make it fail with EPERM. CLONE_NEWTIME is not among them: in clone(2) its
#: bit lies in the exit-signal byte (CSIGNAL), which the kernel strips from the flags, so a new
#: time namespace can only come from clone3 or unshare, and both are refused.
CLONE_NAMESPACE_FLAGS = (
    CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
)

TIOCSTI = 0x5412
TIOCLINUX = 0x541C
#: ioctl(2) requests (compared on the low 32 bits, as the kernel reads them) that fail with EPERM.
BLOCKED_IOCTLS: tuple[int, ...] = (TIOCSTI, TIOCLINUX)

#: personality(2) arguments (low 32 bits) that are allowed: set PER_LINUX, and query (0xffffffff).
PERSONALITY_ALLOWED: tuple[int, ...] = (0x0, 0xFFFFFFFF)

#: System calls that fail with EPERM whatever their arguments (names an architecture lacks are skipped).
BLOCKED_SYSCALLS: tuple[str, ...] = (
    # Mounts and the root directory.
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "open_tree_attr",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    # Namespaces (clone(2) is checked by its flags; clone3 gets ENOSYS).
    "unshare", "setns",
    # Other processes' memory and file descriptors.
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
    # The kernel itself: modules, kexec, eBPF, perf, the keyring, io_uring, userfaultfd, LSMs.
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "bpf", "perf_event_open",
    "keyctl", "add_key", "request_key", "io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd",
    "fanotify_init", "lsm_set_self_attr",
    # The machine: reboot, swap, kernel log, accounting, quotas, clocks, I/O ports, terminals.
    "reboot", "swapon", "swapoff", "syslog", "acct", "quotactl", "quotactl_fd", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "iopl", "ioperm", "vhangup",
    # File handles bypass path lookup (the "shocker" container escape).
    "open_by_handle_at", "name_to_handle_at",
    # Obsolete interfaces.
    "lookup_dcookie", "nfsservctl", "uselib",
)  # fmt: skip

#: System calls that fail with ENOSYS, so that callers fall back to one the filter can check.
ENOSYS_SYSCALLS: tuple[str, ...] = ("clone3",)


class UnsupportedArchitecture(ValueError):
    """The machine architecture has no syscall table here (only x86_64 and aarch64 do)."""


# --- Syscall tables -------------------------------------------------------------------------------

# fmt: off
#: x86_64 system call numbers (asm/unistd_64.h; x32 calls are these with `X32_SYSCALL_BIT` set).
#: From 424 on, every architecture shares the asm-generic numbers.
X86_64_SYSCALLS: dict[str, int] = {
    "read": 0, "write": 1, "open": 2, "close": 3, "stat": 4, "fstat": 5, "lstat": 6, "poll": 7, "lseek": 8, "mmap": 9,
    "mprotect": 10, "munmap": 11, "brk": 12, "rt_sigaction": 13, "rt_sigprocmask": 14, "rt_sigreturn": 15,
    "ioctl": 16, "pread64": 17, "pwrite64": 18, "readv": 19, "writev": 20, "access": 21, "pipe": 22, "select": 23,
    "sched_yield": 24, "mremap": 25, "msync": 26, "mincore": 27, "madvise": 28, "shmget": 29, "shmat": 30,
    "shmctl": 31, "dup": 32, "dup2": 33, "pause": 34, "nanosleep": 35, "getitimer": 36, "alarm": 37, "setitimer": 38,
    "getpid": 39, "sendfile": 40, "socket": 41, "connect": 42, "accept": 43, "sendto": 44, "recvfrom": 45,
    "sendmsg": 46, "recvmsg": 47, "shutdown": 48, "bind": 49, "listen": 50, "getsockname": 51, "getpeername": 52,
    "socketpair": 53, "setsockopt": 54, "getsockopt": 55, "clone": 56, "fork": 57, "vfork": 58, "execve": 59,
    "exit": 60, "wait4": 61, "kill": 62, "uname": 63, "semget": 64, "semop": 65, "semctl": 66, "shmdt": 67,
    "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71, "fcntl": 72, "flock": 73, "fsync": 74, "fdatasync": 75,
    "truncate": 76, "ftruncate": 77, "getdents": 78, "getcwd": 79, "chdir": 80, "fchdir": 81, "rename": 82,
    "mkdir": 83, "rmdir": 84, "creat": 85, "link": 86, "unlink": 87, "symlink": 88, "readlink": 89, "chmod": 90,
    "fchmod": 91, "chown": 92, "fchown": 93, "lchown": 94, "umask": 95, "gettimeofday": 96, "getrlimit": 97,
    "getrusage": 98, "sysinfo": 99, "times": 100, "ptrace": 101, "getuid": 102, "syslog": 103, "getgid": 104,
    "setuid": 105, "setgid": 106, "geteuid": 107, "getegid": 108, "setpgid": 109, "getppid": 110, "getpgrp": 111,
    "setsid": 112, "setreuid": 113, "setregid": 114, "getgroups": 115, "setgroups": 116, "setresuid": 117,
    "getresuid": 118, "setresgid": 119, "getresgid": 120, "getpgid": 121, "setfsuid": 122, "setfsgid": 123,
    "getsid": 124, "capget": 125, "capset": 126, "rt_sigpending": 127, "rt_sigtimedwait": 128, "rt_sigqueueinfo": 129,
    "rt_sigsuspend": 130, "sigaltstack": 131, "utime": 132, "mknod": 133, "uselib": 134, "personality": 135,
    "ustat": 136, "statfs": 137, "fstatfs": 138, "sysfs": 139, "getpriority": 140, "setpriority": 141,
    "sched_setparam": 142, "sched_getparam": 143, "sched_setscheduler": 144, "sched_getscheduler": 145,
    "sched_get_priority_max": 146, "sched_get_priority_min": 147, "sched_rr_get_interval": 148, "mlock": 149,
    "munlock": 150, "mlockall": 151, "munlockall": 152, "vhangup": 153, "modify_ldt": 154, "pivot_root": 155,
    "_sysctl": 156, "prctl": 157, "arch_prctl": 158, "adjtimex": 159, "setrlimit": 160, "chroot": 161, "sync": 162,
    "acct": 163, "settimeofday": 164, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169,
    "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173, "create_module": 174, "init_module": 175,
    "delete_module": 176, "get_kernel_syms": 177, "query_module": 178, "quotactl": 179, "nfsservctl": 180,
    "getpmsg": 181, "putpmsg": 182, "afs_syscall": 183, "tuxcall": 184, "security": 185, "gettid": 186,
    "readahead": 187, "setxattr": 188, "lsetxattr": 189, "fsetxattr": 190, "getxattr": 191, "lgetxattr": 192,
    "fgetxattr": 193, "listxattr": 194, "llistxattr": 195, "flistxattr": 196, "removexattr": 197, "lremovexattr": 198,
    "fremovexattr": 199, "tkill": 200, "time": 201, "futex": 202, "sched_setaffinity": 203, "sched_getaffinity": 204,
    "set_thread_area": 205, "io_setup": 206, "io_destroy": 207, "io_getevents": 208, "io_submit": 209,
    "io_cancel": 210, "get_thread_area": 211, "lookup_dcookie": 212, "epoll_create": 213, "epoll_ctl_old": 214,
    "epoll_wait_old": 215, "remap_file_pages": 216, "getdents64": 217, "set_tid_address": 218, "restart_syscall": 219,
    "semtimedop": 220, "fadvise64": 221, "timer_create": 222, "timer_settime": 223, "timer_gettime": 224,
    "timer_getoverrun": 225, "timer_delete": 226, "clock_settime": 227, "clock_gettime": 228, "clock_getres": 229,
    "clock_nanosleep": 230, "exit_group": 231, "epoll_wait": 232, "epoll_ctl": 233, "tgkill": 234, "utimes": 235,
    "vserver": 236, "mbind": 237, "set_mempolicy": 238, "get_mempolicy": 239, "mq_open": 240, "mq_unlink": 241,
    "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244, "mq_getsetattr": 245, "kexec_load": 246,
    "waitid": 247, "add_key": 248, "request_key": 249, "keyctl": 250, "ioprio_set": 251, "ioprio_get": 252,
    "inotify_init": 253, "inotify_add_watch": 254, "inotify_rm_watch": 255, "migrate_pages": 256, "openat": 257,
    "mkdirat": 258, "mknodat": 259, "fchownat": 260, "futimesat": 261, "newfstatat": 262, "unlinkat": 263,
    "renameat": 264, "linkat": 265, "symlinkat": 266, "readlinkat": 267, "fchmodat": 268, "faccessat": 269,
    "pselect6": 270, "ppoll": 271, "unshare": 272, "set_robust_list": 273, "get_robust_list": 274, "splice": 275,
    "tee": 276, "sync_file_range": 277, "vmsplice": 278, "move_pages": 279, "utimensat": 280, "epoll_pwait": 281,
    "signalfd": 282, "timerfd_create": 283, "eventfd": 284, "fallocate": 285, "timerfd_settime": 286,
    "timerfd_gettime": 287, "accept4": 288, "signalfd4": 289, "eventfd2": 290, "epoll_create1": 291, "dup3": 292,
    "pipe2": 293, "inotify_init1": 294, "preadv": 295, "pwritev": 296, "rt_tgsigqueueinfo": 297,
    "perf_event_open": 298, "recvmmsg": 299, "fanotify_init": 300, "fanotify_mark": 301, "prlimit64": 302,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "clock_adjtime": 305, "syncfs": 306, "sendmmsg": 307,
    "setns": 308, "getcpu": 309, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "finit_module": 313,
    "sched_setattr": 314, "sched_getattr": 315, "renameat2": 316, "seccomp": 317, "getrandom": 318,
    "memfd_create": 319, "kexec_file_load": 320, "bpf": 321, "execveat": 322, "userfaultfd": 323, "membarrier": 324,
    "mlock2": 325, "copy_file_range": 326, "preadv2": 327, "pwritev2": 328, "pkey_mprotect": 329, "pkey_alloc": 330,
    "pkey_free": 331, "statx": 332, "io_pgetevents": 333, "rseq": 334, "pidfd_send_signal": 424,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_open": 434, "clone3": 435,
    "close_range": 436, "openat2": 437, "pidfd_getfd": 438, "faccessat2": 439, "process_madvise": 440,
    "epoll_pwait2": 441, "mount_setattr": 442, "quotactl_fd": 443, "landlock_create_ruleset": 444,
    "landlock_add_rule": 445, "landlock_restrict_self": 446, "memfd_secret": 447, "process_mrelease": 448,
    "futex_waitv": 449, "set_mempolicy_home_node": 450, "cachestat": 451, "fchmodat2": 452, "map_shadow_stack": 453,
    "futex_wake": 454, "futex_wait": 455, "futex_requeue": 456, "statmount": 457, "listmount": 458,
    "lsm_get_self_attr": 459, "lsm_set_self_attr": 460, "lsm_list_modules": 461, "mseal": 462, "setxattrat": 463,
    "getxattrat": 464, "listxattrat": 465, "removexattrat": 466, "open_tree_attr": 467, "file_getattr": 468,
    "file_setattr": 469,
}

#: aarch64 system call numbers: the asm-generic table (asm-generic/unistd.h) as arm64 configures it
#: (64-bit, with renameat, newfstatat/fstat, getrlimit/setrlimit, memfd_secret and clone3).
AARCH64_SYSCALLS: dict[str, int] = {
    "io_setup": 0, "io_destroy": 1, "io_submit": 2, "io_cancel": 3, "io_getevents": 4, "setxattr": 5, "lsetxattr": 6,
    "fsetxattr": 7, "getxattr": 8, "lgetxattr": 9, "fgetxattr": 10, "listxattr": 11, "llistxattr": 12,
    "flistxattr": 13, "removexattr": 14, "lremovexattr": 15, "fremovexattr": 16, "getcwd": 17, "lookup_dcookie": 18,
    "eventfd2": 19, "epoll_create1": 20, "epoll_ctl": 21, "epoll_pwait": 22, "dup": 23, "dup3": 24, "fcntl": 25,
    "inotify_init1": 26, "inotify_add_watch": 27, "inotify_rm_watch": 28, "ioctl": 29, "ioprio_set": 30,
    "ioprio_get": 31, "flock": 32, "mknodat": 33, "mkdirat": 34, "unlinkat": 35, "symlinkat": 36, "linkat": 37,
    "renameat": 38, "umount2": 39, "mount": 40, "pivot_root": 41, "nfsservctl": 42, "statfs": 43, "fstatfs": 44,
    "truncate": 45, "ftruncate": 46, "fallocate": 47, "faccessat": 48, "chdir": 49, "fchdir": 50, "chroot": 51,
    "fchmod": 52, "fchmodat": 53, "fchownat": 54, "fchown": 55, "openat": 56, "close": 57, "vhangup": 58, "pipe2": 59,
    "quotactl": 60, "getdents64": 61, "lseek": 62, "read": 63, "write": 64, "readv": 65, "writev": 66, "pread64": 67,
    "pwrite64": 68, "preadv": 69, "pwritev": 70, "sendfile": 71, "pselect6": 72, "ppoll": 73, "signalfd4": 74,
    "vmsplice": 75, "splice": 76, "tee": 77, "readlinkat": 78, "newfstatat": 79, "fstat": 80, "sync": 81, "fsync": 82,
    "fdatasync": 83, "sync_file_range": 84, "timerfd_create": 85, "timerfd_settime": 86, "timerfd_gettime": 87,
    "utimensat": 88, "acct": 89, "capget": 90, "capset": 91, "personality": 92, "exit": 93, "exit_group": 94,
    "waitid": 95, "set_tid_address": 96, "unshare": 97, "futex": 98, "set_robust_list": 99, "get_robust_list": 100,
    "nanosleep": 101, "getitimer": 102, "setitimer": 103, "kexec_load": 104, "init_module": 105, "delete_module": 106,
    "timer_create": 107, "timer_gettime": 108, "timer_getoverrun": 109, "timer_settime": 110, "timer_delete": 111,
    "clock_settime": 112, "clock_gettime": 113, "clock_getres": 114, "clock_nanosleep": 115, "syslog": 116,
    "ptrace": 117, "sched_setparam": 118, "sched_setscheduler": 119, "sched_getscheduler": 120, "sched_getparam": 121,
    "sched_setaffinity": 122, "sched_getaffinity": 123, "sched_yield": 124, "sched_get_priority_max": 125,
    "sched_get_priority_min": 126, "sched_rr_get_interval": 127, "restart_syscall": 128, "kill": 129, "tkill": 130,
    "tgkill": 131, "sigaltstack": 132, "rt_sigsuspend": 133, "rt_sigaction": 134, "rt_sigprocmask": 135,
    "rt_sigpending": 136, "rt_sigtimedwait": 137, "rt_sigqueueinfo": 138, "rt_sigreturn": 139, "setpriority": 140,
    "getpriority": 141, "reboot": 142, "setregid": 143, "setgid": 144, "setreuid": 145, "setuid": 146,
    "setresuid": 147, "getresuid": 148, "setresgid": 149, "getresgid": 150, "setfsuid": 151, "setfsgid": 152,
    "times": 153, "setpgid": 154, "getpgid": 155, "getsid": 156, "setsid": 157, "getgroups": 158, "setgroups": 159,
    "uname": 160, "sethostname": 161, "setdomainname": 162, "getrlimit": 163, "setrlimit": 164, "getrusage": 165,
    "umask": 166, "prctl": 167, "getcpu": 168, "gettimeofday": 169, "settimeofday": 170, "adjtimex": 171,
    "getpid": 172, "getppid": 173, "getuid": 174, "geteuid": 175, "getgid": 176, "getegid": 177, "gettid": 178,
    "sysinfo": 179, "mq_open": 180, "mq_unlink": 181, "mq_timedsend": 182, "mq_timedreceive": 183, "mq_notify": 184,
    "mq_getsetattr": 185, "msgget": 186, "msgctl": 187, "msgrcv": 188, "msgsnd": 189, "semget": 190, "semctl": 191,
    "semtimedop": 192, "semop": 193, "shmget": 194, "shmctl": 195, "shmat": 196, "shmdt": 197, "socket": 198,
    "socketpair": 199, "bind": 200, "listen": 201, "accept": 202, "connect": 203, "getsockname": 204,
    "getpeername": 205, "sendto": 206, "recvfrom": 207, "setsockopt": 208, "getsockopt": 209, "shutdown": 210,
    "sendmsg": 211, "recvmsg": 212, "readahead": 213, "brk": 214, "munmap": 215, "mremap": 216, "add_key": 217,
    "request_key": 218, "keyctl": 219, "clone": 220, "execve": 221, "mmap": 222, "fadvise64": 223, "swapon": 224,
    "swapoff": 225, "mprotect": 226, "msync": 227, "mlock": 228, "munlock": 229, "mlockall": 230, "munlockall": 231,
    "mincore": 232, "madvise": 233, "remap_file_pages": 234, "mbind": 235, "get_mempolicy": 236, "set_mempolicy": 237,
    "migrate_pages": 238, "move_pages": 239, "rt_tgsigqueueinfo": 240, "perf_event_open": 241, "accept4": 242,
    "recvmmsg": 243, "wait4": 260, "prlimit64": 261, "fanotify_init": 262, "fanotify_mark": 263,
    "name_to_handle_at": 264, "open_by_handle_at": 265, "clock_adjtime": 266, "syncfs": 267, "setns": 268,
    "sendmmsg": 269, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "finit_module": 273,
    "sched_setattr": 274, "sched_getattr": 275, "renameat2": 276, "seccomp": 277, "getrandom": 278,
    "memfd_create": 279, "bpf": 280, "execveat": 281, "userfaultfd": 282, "membarrier": 283, "mlock2": 284,
    "copy_file_range": 285, "preadv2": 286, "pwritev2": 287, "pkey_mprotect": 288, "pkey_alloc": 289,
    "pkey_free": 290, "statx": 291, "io_pgetevents": 292, "rseq": 293, "kexec_file_load": 294,
    "pidfd_send_signal": 424, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "pidfd_open": 434, "clone3": 435, "close_range": 436, "openat2": 437, "pidfd_getfd": 438, "faccessat2": 439,
    "process_madvise": 440, "epoll_pwait2": 441, "mount_setattr": 442, "quotactl_fd": 443,
    "landlock_create_ruleset": 444, "landlock_add_rule": 445, "landlock_restrict_self": 446, "memfd_secret": 447,
    "process_mrelease": 448, "futex_waitv": 449, "set_mempolicy_home_node": 450, "cachestat": 451, "fchmodat2": 452,
    "map_shadow_stack": 453, "futex_wake": 454, "futex_wait": 455, "futex_requeue": 456, "statmount": 457,
    "listmount": 458, "lsm_get_self_attr": 459, "lsm_set_self_attr": 460, "lsm_list_modules": 461, "mseal": 462,
    "setxattrat": 463, "getxattrat": 464, "listxattrat": 465, "removexattrat": 466, "open_tree_attr": 467,
    "file_getattr": 468, "file_setattr": 469,
}

# fmt: on

#: Syscall numbers of each supported architecture, by name.
SYSCALLS: dict[str, dict[str, int]] = {"x86_64": X86_64_SYSCALLS, "aarch64": AARCH64_SYSCALLS}

_MACHINE_NAMES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def _arch_name(arch: str) -> str:
    try:
        return _MACHINE_NAMES[arch.lower()]
    except KeyError:
        raise UnsupportedArchitecture(
            f"no seccomp filter for architecture {arch!r} (supported: {', '.join(sorted(SYSCALLS))})"
        ) from None


def native_arch() -> str:
    """This machine's architecture as a key of `SYSCALLS` ("x86_64" or "aarch64").

    Raises `UnsupportedArchitecture` on any other machine.
    """
    return _arch_name(platform.machine())


# --- Classic BPF (linux/filter.h, linux/bpf_common.h) -----------------------------------------------

BPF_LD_W_ABS = 0x20  # A = u32 at offset k of struct seccomp_data
BPF_LD_IMM = 0x00  # A = k
BPF_ALU_AND_K = 0x54  # A &= k
BPF_JMP_JA = 0x05  # pc += k
BPF_JMP_JEQ_K = 0x15  # pc += (A == k) ? jt : jf
BPF_JMP_JGT_K = 0x25  # pc += (A > k) ? jt : jf   (unsigned)
BPF_JMP_JGE_K = 0x35  # pc += (A >= k) ? jt : jf  (unsigned)
BPF_JMP_JSET_K = 0x45  # pc += (A & k) ? jt : jf
BPF_RET_K = 0x06  # return k
BPF_RET_A = 0x16  # return A
BPF_MAXINSNS = 4096
#: The largest jump: jt and jf are 8-bit offsets from the next instruction.
MAX_JUMP = 255

#: ``struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}``. Both supported architectures are
#: little-endian, so the program is written little-endian whatever machine builds it.
_INSN = struct.Struct("<HBBI")
#: ``struct seccomp_data {int nr; u32 arch; u64 instruction_pointer; u64 args[6]}``.
_SECCOMP_DATA = struct.Struct("<IIQ6Q")
_OFF_NR = 0
_OFF_ARCH = 4
_OFF_IP = 8
_OFF_ARGS = 16


def _arg_low(index: int) -> int:
    """Offset of the low 32 bits of ``args[index]`` (little-endian)."""
    return _OFF_ARGS + 8 * index


class _Assembler:
    """Collects instructions whose jump targets may be labels, and resolves them to offsets."""

    def __init__(self) -> None:
        self._insns: list[tuple[int, str | int, str | int, int]] = []
        self._labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        if name in self._labels:
            raise ValueError(f"label {name!r} defined twice")
        self._labels[name] = len(self._insns)

    def load(self, offset: int) -> None:
        self._insns.append((BPF_LD_W_ABS, 0, 0, offset))

    def jump(self, code: int, k: int, jt: str | int, jf: str | int) -> None:
        self._insns.append((code, jt, jf, k))

    def ret(self, action: int) -> None:
        self._insns.append((BPF_RET_K, 0, 0, action))

    def _offset(self, pc: int, target: str | int) -> int:
        offset = target if isinstance(target, int) else self._labels[target] - (pc + 1)
        if not 0 <= offset <= MAX_JUMP:
            raise AssertionError(f"jump at {pc} to {target!r} needs offset {offset}, outside 0..{MAX_JUMP}")
        if pc + 1 + offset >= len(self._insns):
            raise AssertionError(f"jump at {pc} to {target!r} leaves the program")
        return offset

    def assemble(self) -> bytes:
        if not 0 < len(self._insns) <= BPF_MAXINSNS:
            raise AssertionError(f"{len(self._insns)} instructions (the kernel takes 1..{BPF_MAXINSNS})")
        if self._insns[-1][0] != BPF_RET_K:
            raise AssertionError("the program must end with a return")
        out = bytearray()
        for pc, (code, jt, jf, k) in enumerate(self._insns):
            if code & 0x07 == 0x05:  # BPF_JMP: conditional jumps (ja is not emitted)
                jt, jf = self._offset(pc, jt), self._offset(pc, jf)
            out += _INSN.pack(code, jt, jf, k & 0xFFFFFFFF)
        return bytes(out)


def build_filter(arch: str | None = None) -> bytes:
    """The seccomp program for `arch` (default: this machine), as bytes for ``bwrap --seccomp``.

    `arch` is a machine name as `platform.machine` gives it: "x86_64" (or "amd64") or "aarch64"
    (or "arm64"); anything else raises `UnsupportedArchitecture`. The result is an array of
    8-byte ``struct sock_filter`` instructions, little-endian, at most `BPF_MAXINSNS` long, with
    every jump within `MAX_JUMP` (checked while assembling). What it allows and denies is in the
    module docstring; `evaluate` runs it and `disassemble` lists it.
    """
    return _build(native_arch() if arch is None else _arch_name(arch))


@functools.cache
def _build(arch: str) -> bytes:
    table = SYSCALLS[arch]
    asm = _Assembler()
    # The architecture first: the numbers below mean other calls under another ABI.
    asm.load(_OFF_ARCH)
    asm.jump(BPF_JMP_JEQ_K, AUDIT_ARCH[arch], 0, "kill")
    asm.load(_OFF_NR)
    if arch == "x86_64":
        asm.jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, "eperm", 0)
    # Calls checked by their arguments, then the ENOSYS and EPERM lists: each a jeq to a shared
    # return at the end. Targets are ahead of every jump (classic BPF jumps only forwards), and
    # the list is short enough that no offset exceeds 255, which assemble() checks.
    asm.jump(BPF_JMP_JEQ_K, table["clone"], "clone", 0)
    asm.jump(BPF_JMP_JEQ_K, table["ioctl"], "ioctl", 0)
    asm.jump(BPF_JMP_JEQ_K, table["personality"], "personality", 0)
    for name in ENOSYS_SYSCALLS:
        if name in table:
            asm.jump(BPF_JMP_JEQ_K, table[name], "enosys", 0)
    for name in BLOCKED_SYSCALLS:
        if name in table:
            asm.jump(BPF_JMP_JEQ_K, table[name], "eperm", 0)
    asm.ret(SECCOMP_RET_ALLOW)
    # clone(flags, ...): flags is args[0] on both x86_64 and aarch64; the namespace bits are all in
    # the low 32 bits, the only ones the kernel reads.
    asm.label("clone")
    asm.load(_arg_low(0))
    asm.jump(BPF_JMP_JSET_K, CLONE_NAMESPACE_FLAGS, "eperm", 0)
    asm.ret(SECCOMP_RET_ALLOW)
    # ioctl(fd, request, ...): the kernel takes request as an unsigned int, so a request with high
    # bits set is the same request; compare the low 32 bits only.
    asm.label("ioctl")
    asm.load(_arg_low(1))
    for request in BLOCKED_IOCTLS:
        asm.jump(BPF_JMP_JEQ_K, request, "eperm", 0)
    asm.ret(SECCOMP_RET_ALLOW)
    # personality(persona): an unsigned int too.
    asm.label("personality")
    asm.load(_arg_low(0))
    for i, persona in enumerate(PERSONALITY_ALLOWED):
        asm.jump(BPF_JMP_JEQ_K, persona, "personality_ok", "eperm" if i == len(PERSONALITY_ALLOWED) - 1 else 0)
    asm.label("personality_ok")
    asm.ret(SECCOMP_RET_ALLOW)
    asm.label("eperm")
    asm.ret(RET_EPERM)
    asm.label("enosys")
    asm.ret(RET_ENOSYS)
    asm.label("kill")
    asm.ret(SECCOMP_RET_KILL_PROCESS)
    return asm.assemble()


def filter_fd() -> int:
    """A new file descriptor from which bubblewrap reads `build_filter()` for this machine.

    Give it as ``--seccomp FD`` and in ``pass_fds`` (it is created close-on-exec, so only
    ``pass_fds`` hands it over), and close it in the parent once the child has started. It is a
    sealed memfd (a pipe where memfd is missing) positioned at the start: bubblewrap reads it to
    the end, so each bwrap process needs a fresh one. Raises `UnsupportedArchitecture` on
    machines without a filter.

    Example::

        fd = filter_fd()
        try:
            subprocess.run(["bwrap", "--seccomp", str(fd), ...], pass_fds=(fd,))
        finally:
            os.close(fd)
    """
    program = build_filter()
    try:
        fd = os.memfd_create("swerepair-seccomp", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    except (AttributeError, OSError):
        return _pipe_holding(program)
    try:
        _write_all(fd, program)
        os.lseek(fd, 0, os.SEEK_SET)
        seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _pipe_holding(data: bytes) -> int:
    # The program (at most 32 KiB) fits a pipe's buffer (64 KiB), so writing cannot block.
    read_end, write_end = os.pipe()
    try:
        _write_all(write_end, data)
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return read_end


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# --- Reading programs back ------------------------------------------------------------------------


def describe_action(action: int) -> str:
    """A seccomp return value in words: "ALLOW", "ERRNO(1)", "KILL_PROCESS", "TRAP(0)", ..."""
    names = {
        SECCOMP_RET_KILL_PROCESS: "KILL_PROCESS",
        SECCOMP_RET_KILL_THREAD: "KILL_THREAD",
        SECCOMP_RET_TRAP: "TRAP",
        SECCOMP_RET_ERRNO: "ERRNO",
        SECCOMP_RET_TRACE: "TRACE",
        SECCOMP_RET_LOG: "LOG",
        SECCOMP_RET_ALLOW: "ALLOW",
    }
    kind = names.get(action & SECCOMP_RET_ACTION_FULL)
    if kind is None:
        return f"UNKNOWN({action:#x})"
    data = action & SECCOMP_RET_DATA
    return f"{kind}({data})" if data or kind in ("ERRNO", "TRAP", "TRACE") else kind


def _decode(program: bytes) -> list[tuple[int, int, int, int]]:
    if not program or len(program) % _INSN.size:
        raise ValueError(f"a program is a non-empty multiple of {_INSN.size} bytes, not {len(program)}")
    if len(program) // _INSN.size > BPF_MAXINSNS:
        raise ValueError(f"more than {BPF_MAXINSNS} instructions")
    return [(code, jt, jf, k) for code, jt, jf, k in _INSN.iter_unpack(program)]


_FIELDS = {_OFF_NR: "nr", _OFF_ARCH: "arch", _OFF_IP: "ip", _OFF_IP + 4: "ip_hi"}
_FIELDS.update({_arg_low(i): f"args[{i}]" for i in range(6)})
_FIELDS.update({_arg_low(i) + 4: f"args[{i}]_hi" for i in range(6)})
_JUMPS = {BPF_JMP_JEQ_K: "jeq", BPF_JMP_JGT_K: "jgt", BPF_JMP_JGE_K: "jge", BPF_JMP_JSET_K: "jset"}


def disassemble(program: bytes, arch: str | None = None) -> list[str]:
    """One line per instruction, jump targets as absolute indexes.

    With `arch` (a machine name as for `build_filter`), a comparison of the syscall number
    is annotated with the call's name.
    """
    names = {nr: name for name, nr in SYSCALLS[_arch_name(arch)].items()} if arch is not None else {}
    lines = []
    loaded = None
    for pc, (code, jt, jf, k) in enumerate(_decode(program)):
        if code == BPF_LD_W_ABS:
            loaded = k
            text = f"ld [{k}]  ; {_FIELDS.get(k, '?')}"
        elif code == BPF_LD_IMM:
            loaded = None
            text = f"ld #{k:#x}"
        elif code == BPF_ALU_AND_K:
            text = f"and #{k:#x}"
        elif code == BPF_JMP_JA:
            text = f"ja {pc + 1 + k}"
        elif code in _JUMPS:
            text = f"{_JUMPS[code]} #{k:#x}, {pc + 1 + jt}, {pc + 1 + jf}"
            if loaded == _OFF_NR and code == BPF_JMP_JEQ_K and k in names:
                text += f"  ; {names[k]}"
        elif code == BPF_RET_K:
            text = f"ret {describe_action(k)}"
        elif code == BPF_RET_A:
            text = "ret A"
        else:
            text = f".insn {code:#06x}, {jt}, {jf}, {k:#x}"
        lines.append(f"{pc:4d}: {text}")
    return lines


def evaluate(
    program: bytes,
    nr: int,
    args: Sequence[int] = (),
    arch: int | None = None,
    instruction_pointer: int = 0,
) -> int:
    """Run `program` on one system call, as the kernel would, and return the action word.

    `nr` is the system call number (negative numbers are taken as the kernel's ``int``);
    `args` up to six register values (missing ones are 0; each is taken modulo 2**64); `arch`
    the ``AUDIT_ARCH_*`` value the kernel reports (default: this machine's, where `AUDIT_ARCH`
    has it; elsewhere pass it). The result is a
    ``SECCOMP_RET_*`` value: `describe_action` names it. Supports the instructions this module
    emits (plus ``ld #k``, ``and #k``, ``ja`` and ``ret A``); anything else, a misaligned or
    out-of-range load, or a jump out of the program raises ValueError.
    """
    if len(args) > 6:
        raise ValueError("a system call has at most 6 arguments")
    if arch is None:
        arch = AUDIT_ARCH[native_arch()]
    regs = [a & 0xFFFFFFFFFFFFFFFF for a in args] + [0] * (6 - len(args))
    data = _SECCOMP_DATA.pack(nr & 0xFFFFFFFF, arch & 0xFFFFFFFF, instruction_pointer & 0xFFFFFFFFFFFFFFFF, *regs)
    insns = _decode(program)
    acc = 0
    pc = 0
    while pc < len(insns):
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == BPF_LD_W_ABS:
            if k % 4 or k + 4 > len(data):
                raise ValueError(f"load at offset {k} is misaligned or outside struct seccomp_data")
            acc = int.from_bytes(data[k : k + 4], "little")
        elif code == BPF_LD_IMM:
            acc = k
        elif code == BPF_ALU_AND_K:
            acc &= k
        elif code == BPF_JMP_JA:
            pc += k
        elif code in _JUMPS:
            taken = {
                BPF_JMP_JEQ_K: acc == k,
                BPF_JMP_JGT_K: acc > k,
                BPF_JMP_JGE_K: acc >= k,
                BPF_JMP_JSET_K: bool(acc & k),
            }[code]
            pc += jt if taken else jf
        elif code == BPF_RET_K:
            return k
        elif code == BPF_RET_A:
            return acc
        else:
            raise ValueError(f"instruction {pc - 1}: unsupported opcode {code:#06x}")
    raise ValueError("the program ran past its end without returning")
