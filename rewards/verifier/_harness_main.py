# The harness runner's wrapper. This file is not imported by swerepair: its source is sent to
# `python -I -B -c` inside the verifier sandbox. It reads one JSON line from stdin:
#   {"nonce": str, "prelude": bash source, "command": bash source}
# runs the prelude (activation of the instance's environment, the spec's eval commands, a
# reinstall) in one bash, carries its exported environment and working directory over to a
# second bash that runs the test command, and prints the two markers around that second run:
#   ">>>>> Start Test Output <nonce>" and ">>>>> End Test Output <nonce> exit=<status>".
# The nonce is random per run and exists only in this process: it is not in any argv or
# environment, the children get /dev/null as stdin, and this process makes itself
# non-dumpable, so a process of the same user can read neither its memory nor its file
# descriptors through /proc. Text the tests print cannot end the section early or forge one.
import json
import os
import subprocess
import sys
import tempfile

_cfg = json.loads(sys.stdin.readline())
_NONCE = _cfg["nonce"]
try:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4: not dumpable
except Exception:
    pass


def _say(text):
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(1, ("\n" + text + "\n").encode())


_BASH = ["bash", "--noprofile", "--norc", "-c"]
_fd, _envfile = tempfile.mkstemp(prefix="swerepair-harness-", suffix=".sh")
os.close(_fd)
# The prelude's output goes before the start marker: it is not part of the test section.
subprocess.run(
    [
        *_BASH,
        _cfg["prelude"] + '\n{ export -p; printf "cd -- %q\\n" "$PWD"; } >"$0"\n',
        _envfile,
    ],
    stdin=subprocess.DEVNULL,
    check=False,
)
_say(">>>>> Start Test Output " + _NONCE)
_status = subprocess.run(
    [*_BASH, '. "$0" 2>/dev/null; rm -f -- "$0"\n' + _cfg["command"] + "\n", _envfile],
    stdin=subprocess.DEVNULL,
    check=False,
).returncode
_say(">>>>> End Test Output " + _NONCE + " exit=" + str(_status))
if os.path.exists(_envfile):
    os.unlink(_envfile)
