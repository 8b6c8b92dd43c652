"""The seccomp filter: its syscall tables against the kernel headers, its logic through the
interpreter (both architectures), and its effect on a real kernel under bubblewrap."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swerepair.envs.sandbox import seccomp
from swerepair.envs.sandbox.seccomp import (
    AARCH64_SYSCALLS,
    AUDIT_ARCH,
    BLOCKED_SYSCALLS,
    SYSCALLS,
    X86_64_SYSCALLS,
    UnsupportedArchitecture,
    build_filter,
    describe_action,
    disassemble,
    evaluate,
    filter_fd,
)

ALLOW = seccomp.SECCOMP_RET_ALLOW
EPERM = seccomp.RET_EPERM
ENOSYS = seccomp.RET_ENOSYS
KILL = seccomp.SECCOMP_RET_KILL_PROCESS
ARCHES = sorted(SYSCALLS)
AUDIT_ARCH_I386 = 0x40000003
SIGCHLD = 17
U64 = 2**64 - 1

X86_64_HEADER = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
GENERIC_HEADER = Path("/usr/include/asm-generic/unistd.h")
#: What arm64's uapi asm/unistd.h defines before including asm-generic/unistd.h.
ARM64_WANTS = frozenset(
    {
        "__ARCH_WANT_RENAMEAT",
        "__ARCH_WANT_NEW_STAT",
        "__ARCH_WANT_SET_GET_RLIMIT",
        "__ARCH_WANT_TIME32_SYSCALLS",
        "__ARCH_WANT_MEMFD_SECRET",
        "__ARCH_WANT_SYS_CLONE3",
    }
)


def run_filter(arch: str, name: str, *args: int) -> int:
    return evaluate(build_filter(arch), SYSCALLS[arch][name], args, arch=AUDIT_ARCH[arch])


# --- The tables against the kernel headers -------------------------------------------------------


def parse_unistd(text: str, defined: frozenset[str] = frozenset()) -> dict[str, int]:
    """``__NR_name`` numbers from a kernel unistd header, for a 64-bit, non-compat build.

    Enough of the preprocessor for these headers: #if/#ifdef/#ifndef/#else/#endif with
    ``defined(X)``, ``__BITS_PER_LONG``, ``||``, ``&&``, ``!``, ``==`` and ``!=``, and the
    ``__NR3264_*`` aliases of asm-generic.
    """

    def condition(expr: str) -> bool:
        expr = re.sub(r"defined\s*\(\s*(\w+)\s*\)|defined\s+(\w+)", lambda m: str((m[1] or m[2]) in defined), expr)
        expr = expr.replace("__BITS_PER_LONG", "64").replace("||", " or ").replace("&&", " and ")
        expr = re.sub(r"!(?!=)", " not ", expr)
        return bool(eval(expr, {"__builtins__": {}}))

    numbers: dict[str, int] = {}
    generic: dict[str, int] = {}
    stack: list[bool] = []
    for line in text.splitlines():
        line = re.sub(r"/\*.*?\*/", "", line).strip()
        directive = re.match(r"#\s*(ifdef|ifndef|if|else|endif)\b\s*(.*)", line)
        if directive:
            kind, expr = directive.groups()
            if kind == "ifdef":
                stack.append(expr in defined or expr.removeprefix("__NR3264_") in generic)
            elif kind == "ifndef":
                stack.append(expr not in defined)
            elif kind == "if":
                stack.append(condition(expr))
            elif kind == "else":
                stack[-1] = not stack[-1]
            else:
                stack.pop()
            continue
        define = re.match(r"#define\s+__NR(3264)?_(\w+)\s+(\S+)$", line)
        if not all(stack) or not define:
            continue
        is_generic, name, value = define.groups()
        if value.isdigit():
            number = int(value)
        elif value.startswith("__NR3264_"):
            number = generic[value.removeprefix("__NR3264_")]
        else:
            continue
        (generic if is_generic else numbers)[name] = number
    numbers.pop("syscalls", None)  # the table size
    numbers.pop("arch_specific_syscall", None)  # the start of a range, not a call
    return numbers


def check_table(table: dict[str, int], header: dict[str, int]) -> None:
    assert len(header) > 250, "the header parser found too little"
    assert {name: table.get(name) for name in header} == header
    # Calls the header does not know are the ones newer than it, numbered above it.
    newer = {name: nr for name, nr in table.items() if name not in header}
    assert all(nr > max(header.values()) for nr in newer.values()), newer


@pytest.mark.skipif(not X86_64_HEADER.exists(), reason=f"no {X86_64_HEADER}")
def test_x86_64_table_matches_the_installed_header() -> None:
    check_table(X86_64_SYSCALLS, parse_unistd(X86_64_HEADER.read_text()))


@pytest.mark.skipif(not GENERIC_HEADER.exists(), reason=f"no {GENERIC_HEADER}")
def test_aarch64_table_matches_the_asm_generic_header() -> None:
    header = parse_unistd(GENERIC_HEADER.read_text(), ARM64_WANTS)
    check_table(AARCH64_SYSCALLS, header)
    # Spot checks of the configuration: arm64 has these, and not the 32-bit or legacy variants.
    assert header["renameat"] == 38 and header["newfstatat"] == 79 and header["clone3"] == 435
    assert not {"open", "fork", "fcntl64", "llseek", "sync_file_range2", "mmap2"} & header.keys()


def test_the_tables_agree_where_the_numbering_is_shared() -> None:
    # Since 424 (pidfd_send_signal) every architecture takes the same numbers.
    x86 = {name: nr for name, nr in X86_64_SYSCALLS.items() if nr >= 424}
    arm = {name: nr for name, nr in AARCH64_SYSCALLS.items() if nr >= 424}
    assert x86 == arm
    assert len(set(X86_64_SYSCALLS.values())) == len(X86_64_SYSCALLS)
    assert len(set(AARCH64_SYSCALLS.values())) == len(AARCH64_SYSCALLS)


def test_every_blocked_name_is_a_system_call() -> None:
    assert len(set(BLOCKED_SYSCALLS)) == len(BLOCKED_SYSCALLS)
    assert all(name in X86_64_SYSCALLS for name in BLOCKED_SYSCALLS)
    # x86-only calls are skipped on aarch64.
    assert [name for name in BLOCKED_SYSCALLS if name not in AARCH64_SYSCALLS] == ["iopl", "ioperm", "uselib"]


# --- The program's shape -------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHES)
def test_program_is_valid_classic_bpf(arch: str) -> None:
    program = build_filter(arch)
    assert len(program) % 8 == 0 and 0 < len(program) // 8 <= 4096
    insns = list(struct.iter_unpack("<HBBI", program))
    for pc, (code, jt, jf, k) in enumerate(insns):
        if code & 0x07 == 0x05:  # a jump: both targets inside the program (offsets are u8 by construction)
            assert code != 0x05, "no unconditional jumps are emitted"
            assert pc + 1 + max(jt, jf) < len(insns)
        elif code == 0x20:  # ld [k]: an aligned word of struct seccomp_data (64 bytes)
            assert k % 4 == 0 and k < 64
        else:
            assert code == 0x06, f"unexpected opcode {code:#x} at {pc}"
    assert insns[-1][0] == 0x06
    # The first thing checked is the architecture.
    assert insns[0] == (0x20, 0, 0, 4) and insns[1][3] == AUDIT_ARCH[arch]


def test_jumps_beyond_255_are_refused() -> None:
    asm = seccomp._Assembler()
    asm.load(0)
    asm.jump(seccomp.BPF_JMP_JEQ_K, 1, "far", 0)
    for _ in range(256):
        asm.ret(ALLOW)
    asm.label("far")
    asm.ret(EPERM)
    with pytest.raises(AssertionError, match="offset 256"):
        asm.assemble()


def test_native_architecture_and_unsupported_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_filter("amd64") == build_filter("x86_64")
    assert build_filter("arm64") == build_filter("aarch64")
    assert build_filter("x86_64") != build_filter("aarch64")
    with pytest.raises(UnsupportedArchitecture, match="riscv64"):
        build_filter("riscv64")
    assert issubclass(UnsupportedArchitecture, ValueError)
    monkeypatch.setattr(platform, "machine", lambda: "s390x")
    with pytest.raises(UnsupportedArchitecture):
        build_filter()
    with pytest.raises(UnsupportedArchitecture):
        filter_fd()


@pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"), reason="no filter for this machine")
def test_filter_fd_holds_the_native_program() -> None:
    fd = filter_fd()
    try:
        assert not os.get_inheritable(fd), "only pass_fds should hand it over"
        data = b""
        while chunk := os.read(fd, 4096):
            data += chunk
        assert data == build_filter() == build_filter(platform.machine())
        with pytest.raises(OSError):  # sealed memfd (or the read end of a pipe)
            os.write(fd, b"\0" * 8)
    finally:
        os.close(fd)


def test_disassembly_names_the_calls() -> None:
    lines = disassemble(build_filter("x86_64"), "x86_64")
    assert lines[0] == "   0: ld [4]  ; arch"
    assert any(line.endswith("; mount") for line in lines)
    assert [line.split(": ", 1)[1] for line in lines[-3:]] == ["ret ERRNO(1)", "ret ERRNO(38)", "ret KILL_PROCESS"]
    assert describe_action(ALLOW) == "ALLOW" and describe_action(0) == "KILL_THREAD"
    assert describe_action(0x00030007) == "TRAP(7)" and describe_action(0x12340000) == "UNKNOWN(0x12340000)"


# --- The logic, through the interpreter ----------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("name", BLOCKED_SYSCALLS)
def test_blocked_calls_fail_with_eperm(arch: str, name: str) -> None:
    if name not in SYSCALLS[arch]:
        pytest.skip(f"no {name} on {arch}")
    assert run_filter(arch, name) == EPERM
    assert run_filter(arch, name, U64, U64, U64, U64, U64, U64) == EPERM


@pytest.mark.parametrize("arch", ARCHES)
def test_everything_else_is_allowed(arch: str) -> None:
    special = {*BLOCKED_SYSCALLS, "clone", "clone3", "ioctl", "personality"}
    program = build_filter(arch)
    for name, nr in SYSCALLS[arch].items():
        if name not in special:
            for args in ((), (U64,) * 6, (0x7E020000,) * 6):
                assert evaluate(program, nr, args, arch=AUDIT_ARCH[arch]) == ALLOW, name
    # Numbers past the table (newer calls, or none at all) are the kernel's business.
    assert evaluate(program, 1000, arch=AUDIT_ARCH[arch]) == ALLOW


@pytest.mark.parametrize("arch", ARCHES)
def test_clone_is_denied_only_for_new_namespaces(arch: str) -> None:
    fork = SIGCHLD
    vfork = 0x00004000 | 0x00000100 | SIGCHLD  # CLONE_VFORK | CLONE_VM
    thread = 0x003D0F00  # what glibc's pthread_create passes
    for flags in (fork, vfork, thread, 0, fork | 0xFFFFFFFF00000000):
        assert run_filter(arch, "clone", flags) == ALLOW, hex(flags)
    namespaces = [1 << bit for bit in range(32) if seccomp.CLONE_NAMESPACE_FLAGS >> bit & 1]
    assert len(namespaces) == 7
    for flag in namespaces:
        assert run_filter(arch, "clone", flag | SIGCHLD) == EPERM, hex(flag)
        assert run_filter(arch, "clone", flag | thread | 0xFFFF000000000000) == EPERM, hex(flag)
    # The flags are args[0] on both architectures; a namespace bit elsewhere means nothing.
    assert run_filter(arch, "clone", SIGCHLD, seccomp.CLONE_NEWUSER) == ALLOW


@given(flags=st.integers(0, U64), arch=st.sampled_from(ARCHES))
@settings(max_examples=200, deadline=None)
def test_clone_property(flags: int, arch: str) -> None:
    expected = EPERM if flags & seccomp.CLONE_NAMESPACE_FLAGS else ALLOW
    assert run_filter(arch, "clone", flags) == expected


@given(nr=st.integers(0, 0x3FFFFFFF), args=st.lists(st.integers(0, U64), max_size=6), arch=st.sampled_from(ARCHES))
@settings(max_examples=300, deadline=None)
def test_any_call_outside_the_lists_is_allowed(nr: int, args: list[int], arch: str) -> None:
    table = SYSCALLS[arch]
    checked = {table[name] for name in (*BLOCKED_SYSCALLS, "clone", "clone3", "ioctl", "personality") if name in table}
    if nr not in checked:
        assert evaluate(build_filter(arch), nr, args, arch=AUDIT_ARCH[arch]) == ALLOW


@pytest.mark.parametrize("arch", ARCHES)
def test_clone3_gets_enosys_so_libc_falls_back_to_clone(arch: str) -> None:
    assert run_filter(arch, "clone3") == ENOSYS
    assert run_filter(arch, "clone3", 0x7FFF_0000_1000, 88) == ENOSYS


@pytest.mark.parametrize("arch", ARCHES)
def test_ioctl_denies_terminal_injection_only(arch: str) -> None:
    for request in (seccomp.TIOCSTI, seccomp.TIOCLINUX):
        assert run_filter(arch, "ioctl", 0, request) == EPERM
        # The kernel reads request as an unsigned int: high bits do not smuggle it past.
        assert run_filter(arch, "ioctl", 0, request | 0xDEAD_BEEF_0000_0000) == EPERM
        assert run_filter(arch, "ioctl", request, 0) == ALLOW  # the fd, not the request
    for request in (0x5401, 0x5413, 0x541B, 0x5421, 0x40086602):  # TCGETS TIOCGWINSZ FIONREAD FIONBIO FS_IOC_GETFLAGS
        assert run_filter(arch, "ioctl", 1, request) == ALLOW


@pytest.mark.parametrize("arch", ARCHES)
def test_personality_may_only_query_or_reset(arch: str) -> None:
    assert run_filter(arch, "personality", 0xFFFFFFFF) == ALLOW
    assert run_filter(arch, "personality", U64) == ALLOW
    assert run_filter(arch, "personality", 0) == ALLOW
    for persona in (0x0040000, 0x0400000, 0x0020000, 0x0008):  # ADDR_NO_RANDOMIZE READ_IMPLIES_EXEC UNAME26 LINUX32
        assert run_filter(arch, "personality", persona) == EPERM


def test_other_architectures_are_killed() -> None:
    x86, arm = build_filter("x86_64"), build_filter("aarch64")
    for nr in (0, 1, 20, 39, 172):
        assert evaluate(x86, nr, arch=AUDIT_ARCH_I386) == KILL  # int 0x80 on x86_64
        assert evaluate(x86, nr, arch=seccomp.AUDIT_ARCH_AARCH64) == KILL
        assert evaluate(arm, nr, arch=seccomp.AUDIT_ARCH_X86_64) == KILL
        assert evaluate(arm, nr, arch=0x40000028) == KILL  # AUDIT_ARCH_ARM (compat)


def test_x32_calls_fail_with_eperm_on_x86_64() -> None:
    x86, arm = build_filter("x86_64"), build_filter("aarch64")
    for nr in (0, 39, 56, 0x200, 0x3FFFFFFF):
        assert evaluate(x86, seccomp.X32_SYSCALL_BIT | nr, arch=seccomp.AUDIT_ARCH_X86_64) == EPERM
    assert evaluate(x86, -1, arch=seccomp.AUDIT_ARCH_X86_64) == EPERM
    # aarch64 has no x32: such a number is just an unknown call (ENOSYS from the kernel).
    assert evaluate(arm, seccomp.X32_SYSCALL_BIT | 39, arch=seccomp.AUDIT_ARCH_AARCH64) == ALLOW


def test_the_interpreter_refuses_what_it_cannot_run() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        evaluate(b"\0" * 12, 0)
    with pytest.raises(ValueError, match="unsupported opcode"):
        evaluate(struct.pack("<HBBI", 0x07, 0, 0, 0), 0, arch=0)
    with pytest.raises(ValueError, match="outside struct seccomp_data"):
        evaluate(struct.pack("<HBBI", 0x20, 0, 0, 64), 0, arch=0)
    with pytest.raises(ValueError, match="past its end"):
        evaluate(struct.pack("<HBBI", 0x20, 0, 0, 0), 0, arch=0)
    with pytest.raises(ValueError, match="at most 6"):
        evaluate(build_filter("x86_64"), 0, (0,) * 7, arch=0)


# --- A real kernel, under bubblewrap -------------------------------------------------------------

BWRAP = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
# An interpreter (a checkout's venv, its base) under /tmp stays visible above the private /tmp.
for _prefix in sorted({sys.prefix, sys.base_prefix, os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}):
    if _prefix.startswith("/tmp/"):
        BWRAP += ["--ro-bind", _prefix, _prefix]
BWRAP += ["--unshare-all", "--die-with-parent"]


@pytest.fixture(scope="module")
def bwrap() -> str:
    """The bwrap executable, where it can create the namespaces these tests use."""
    exe = shutil.which("bwrap")
    if platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip("no filter for this machine")
    problem = "bwrap is not installed" if exe is None else None
    if exe is not None:
        probe = subprocess.run([exe, *BWRAP, "--", "true"], capture_output=True, text=True, timeout=30)
        if probe.returncode != 0:
            problem = f"bwrap cannot create namespaces here: {probe.stderr.strip()}"
    if problem is not None:
        if os.environ.get("CI"):  # as for the sandbox's isolation tests: they must run under CI
            pytest.fail(problem)
        pytest.skip(problem)
    assert exe is not None
    return exe


def sandboxed(bwrap: str, code: str, *argv: str, seccomp_filter: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code argv...`` under bwrap, with the filter unless told otherwise."""
    command = [bwrap, *BWRAP]
    fd = filter_fd() if seccomp_filter else None
    if fd is not None:
        command += ["--seccomp", str(fd)]
    try:
        return subprocess.run(
            [*command, "--", sys.executable, "-c", code, *argv],
            pass_fds=() if fd is None else (fd,),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        if fd is not None:
            os.close(fd)


# Each probe returns 0 on success or the errno. Syscall numbers come in as JSON on argv.
DENIALS = r"""
import ctypes, json, os, shutil, subprocess, sys
nr = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L = ctypes.c_ulong

def call(*args):
    ctypes.set_errno(0)
    rc = libc.syscall(*(L(a) for a in args))
    return (rc, ctypes.get_errno() if rc == -1 else 0)

def buffer(data, keep=[]):
    keep.append(ctypes.create_string_buffer(data))  # alive until the end of the run
    return ctypes.addressof(keep[-1])

out = {}
out["mount"] = call(nr["mount"], buffer(b"none"), buffer(b"/tmp"), buffer(b"tmpfs"), 0, 0)[1]
out["setns"] = call(nr["setns"], 0, 0)[1]
pid, err = call(nr["clone"], 0x10000000 | 17, 0, 0, 0, 0)  # CLONE_NEWUSER | SIGCHLD: a fork into a new user namespace
if pid == 0:
    os._exit(0)
if pid > 0:
    os.waitpid(pid, 0)
out["clone_newuser"] = err
pid, err = call(nr["clone"], 17, 0, 0, 0, 0)  # a plain fork through the same raw call
if pid == 0:
    os._exit(5)
out["clone_fork"] = err or os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
out["clone3"] = call(nr["clone3"], 0, 0)[1]
out["ptrace"] = call(nr["ptrace"], 2, os.getppid(), 0, 0)[1]  # PTRACE_PEEKDATA of an untraced process
out["keyctl"] = call(nr["keyctl"], 0, 2**64 - 3, 0)[1]  # KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING
out["bpf"] = call(nr["bpf"], 0, 0, 0)[1]
out["io_uring_setup"] = call(nr["io_uring_setup"], 1, buffer(bytes(120)))[1]
with open("/dev/null") as null:
    c = buffer(b"x")
    out["tiocsti"] = call(nr["ioctl"], null.fileno(), 0x5412, c)[1]
    out["tiocsti_high_bits"] = call(nr["ioctl"], null.fileno(), 0x1_0000_5412, c)[1]
    out["tcgets"] = call(nr["ioctl"], null.fileno(), 0x5401, c)[1]  # a harmless request: ENOTTY
out["personality_query"] = call(nr["personality"], 0xFFFFFFFF)[1]
out["personality_no_aslr"] = call(nr["personality"], 0x0040000)[1]
if "x32_getpid" in nr:
    out["x32_getpid"] = call(nr["x32_getpid"])[1]
exe = shutil.which("unshare")
if exe:
    proc = subprocess.run([exe, "-U", "true"], capture_output=True, text=True)
    out["unshare_program"] = [proc.returncode, proc.stderr.strip()]
out["unshare_user"] = call(nr["unshare"], 0x10000000)[1]  # last: where it works, it changes this process
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
out["seccomp_mode"] = status.get("Seccomp", "").strip()
print(json.dumps(out))
"""


def native_numbers() -> str:
    arch = seccomp.native_arch()
    table = SYSCALLS[arch]
    names = ("mount", "unshare", "setns", "clone", "clone3", "ptrace", "keyctl", "bpf", "io_uring_setup", "ioctl")
    numbers = {name: table[name] for name in (*names, "personality")}
    if arch == "x86_64":
        numbers["x32_getpid"] = seccomp.X32_SYSCALL_BIT | table["getpid"]
    return json.dumps(numbers)


def test_kernel_denies_what_the_filter_lists(bwrap: str) -> None:
    proc = sandboxed(bwrap, DENIALS, native_numbers())
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["seccomp_mode"] == "2", "the filter is not installed"
    eperm, enosys, enotty = 1, 38, 25
    for name in ("mount", "unshare_user", "setns", "clone_newuser", "ptrace", "keyctl", "bpf", "io_uring_setup"):
        assert got[name] == eperm, (name, got)
    assert got["tiocsti"] == got["tiocsti_high_bits"] == eperm
    assert got["personality_no_aslr"] == eperm
    assert got["clone3"] == enosys
    # What is not listed behaves as usual.
    assert got["clone_fork"] == 5
    assert got["tcgets"] == enotty
    assert got["personality_query"] == 0
    if "x32_getpid" in got:
        assert got["x32_getpid"] == eperm
    if "unshare_program" in got:
        rc, stderr = got["unshare_program"]
        assert rc != 0 and "Operation not permitted" in stderr


def test_without_the_filter_the_same_probes_get_through(bwrap: str) -> None:
    """The control: the denials above come from the filter, not from the sandbox's other limits."""
    proc = sandboxed(bwrap, DENIALS, native_numbers(), seccomp_filter=False)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["seccomp_mode"] == "0"
    assert got["clone3"] == 22  # EINVAL: the kernel read a NULL clone_args
    assert got["ptrace"] == 3  # ESRCH: the parent is not being traced
    assert got["tiocsti"] == 25  # ENOTTY: /dev/null is not a terminal
    assert got["personality_no_aslr"] == 0
    if os.geteuid() == 0:
        # bwrap started by root without --unshare-user keeps the capabilities: only seccomp stops
        # this process from mounting.
        assert got["mount"] == 0, got


ORDINARY_WORK = r'''
import json, os, subprocess, sys, threading
out = {}
pid = os.fork()
if pid == 0:
    os._exit(7)
out["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
out["true"] = subprocess.run(["true"]).returncode
box = []
t = threading.Thread(target=box.append, args=(42,))
t.start(); t.join()
out["thread"] = box
with open(sys.executable, "rb") as f:
    out["read"] = f.read(4).hex()
out["listdir"] = "proc" in os.listdir("/")
git = subprocess.run(["git", "--version"], capture_output=True, text=True)
out["git"] = git.stdout.strip()
script = (
    "git init -q /tmp/repo && cd /tmp/repo && echo a > f && git add f"
    " && git -c user.name=t -c user.email=t@t commit -qm x && git log --oneline | wc -l"
)
out["git_commit"] = subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout.strip()
pool = """
import multiprocessing
if __name__ == "__main__":
    with multiprocessing.Pool(2) as pool:
        print(sum(pool.map(abs, range(-10, 0))))
"""
out["pool"] = subprocess.run([sys.executable, "-c", pool], capture_output=True, text=True).stdout.strip()
out["bash"] = subprocess.run(["bash", "-c", "echo $(echo hi) | cat"], capture_output=True, text=True).stdout.strip()
print(json.dumps(out))
'''


def test_ordinary_work_still_runs_under_the_filter(bwrap: str) -> None:
    proc = sandboxed(bwrap, ORDINARY_WORK)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["fork"] == 7
    assert got["true"] == 0
    assert got["thread"] == [42]
    assert got["read"] == "7f454c46"  # \x7fELF
    assert got["listdir"] is True
    assert got["git"].startswith("git version")
    assert got["git_commit"] == "1"
    assert got["pool"] == "55"
    assert got["bash"] == "hi"


I386_GETPID = r"""
import ctypes, mmap, os
code = b"\xb8\x14\x00\x00\x00\xcd\x80\xc3"  # mov eax, 20 (getpid in the i386 table); int 0x80; ret
pid = os.fork()
if pid == 0:
    m = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    m.write(code)
    function = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
    os._exit(0 if function() == os.getpid() else 3)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


@pytest.mark.skipif(platform.machine() != "x86_64", reason="int 0x80 is x86")
def test_i386_system_calls_kill_the_process(bwrap: str) -> None:
    control = sandboxed(bwrap, I386_GETPID, seccomp_filter=False)
    if control.stdout.strip() != "0":
        pytest.skip(f"no i386 emulation (or no executable memory) here: {control.stdout} {control.stderr}")
    proc = sandboxed(bwrap, I386_GETPID)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "-31"  # killed by SIGSYS
