"""Where authapp's time goes under one bench load: py-spy samples both workers while wrk runs.

    .venv/bin/pip install py-spy     # into the venv only, for profiling: not a dependency
    python -m bench.profile me       # or api_key, refresh, login, signup, flood

Prints the functions with the most samples on top of the stack (self) and on it at all
(inclusive), and keeps py-spy's collapsed stacks under /tmp for a flame graph.
"""

from __future__ import annotations

import collections
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench import deploy, stack
from bench.deploy import say, show
from bench.loadgen import Load, Running, run
from bench.options import Options
from bench.scenarios import ME, ORGANIZATION

TOP = 25
RATE = 250  # samples per second and thread
# "function (path/to/file.py:123)": one frame of py-spy's raw (collapsed) output.
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^:()]+)(?::\d+)?\)$")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy is missing: .venv/bin/pip install py-spy (not a dependency)")
    return found


def scenario_loads(
    name: str, opts: Options, url: str, prepared: deploy.Prepared, nonce: str
) -> list[Load]:
    def load(script: str, *args: str, connections: int = opts.connections) -> Load:
        return Load(script, url, connections, opts.duration, threads=opts.wrk_threads, args=args)

    me = load("get.lua", ME, "Authorization", "Bearer ", str(prepared.access_tokens))
    loads = {
        "me": [me],
        "api_key": [load("get.lua", ORGANIZATION, "X-API-Key", "", str(prepared.api_keys))],
        "refresh": [load("refresh.lua", str(prepared.refresh_tokens), str(opts.wrk_threads))],
        "login": [load("login.lua", str(prepared.emails), stack.PASSWORD)],
        "signup": [load("signup.lua", nonce, stack.PASSWORD)],
        "flood": [me, load("flood.lua", nonce, connections=opts.flood_connections)],
    }
    if name not in loads:
        raise SystemExit(f"unknown scenario {name!r}: one of {', '.join(loads)}")
    return loads[name]


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def summarise(raw: Path) -> str:
    """Top functions by self and by inclusive samples, from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        names = []
        for frame in stack_text.split(";"):
            match = FRAME.match(frame)
            if match:  # process and thread pseudo-frames do not match
                names.append(f"{match['function']} ({_short(match['file'])})")
        if not names:
            continue
        total += count
        own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    lines = [f"{total} samples of busy worker threads", "", "self (top of stack)"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(TOP)]
    lines += ["", "inclusive (anywhere on the stack)"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(TOP * 2)]
    return "\n".join(lines)


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "me"
    opts = Options.from_env()
    deploy.check_prerequisites(opts)
    spy = py_spy()
    stack.raise_open_files()
    nonce = secrets.token_hex(4)
    workdir = Path(tempfile.mkdtemp(prefix="authapp-profile-"))
    raw = workdir / f"{name}.collapsed.txt"
    with ExitStack() as exits:
        authapp = deploy.start_authapp(opts, exits, workdir, nonce)
        prepared = deploy.prepare_authapp(opts, authapp.server, workdir, nonce)
        run(scenario_loads("me", opts, authapp.server.url, prepared, nonce)[0])  # warm up
        say(f"{name}: wrk for {opts.duration:.0f} s with py-spy on both workers")
        spying = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(authapp.server.process.pid),
                "--subprocesses",
                "--format",
                "raw",
                "--rate",
                str(RATE),
                "--duration",
                str(round(opts.duration)),
                "--output",
                str(raw),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        running = [
            Running(load)
            for load in scenario_loads(name, opts, authapp.server.url, prepared, nonce)
        ]
        for load, result in zip(running, [r.result() for r in running], strict=True):
            show(
                f"{load.load.script}: {result.rps:.1f} req/s, p50 {result.p50_ms} ms, "
                f"p99 {result.p99_ms} ms, {result.statuses}"
            )
        _, errors = spying.communicate(timeout=opts.duration + 60)
        if spying.returncode != 0 or not raw.exists():
            raise SystemExit(f"py-spy failed ({spying.returncode}): {errors}")
    show(summarise(raw))
    say(f"collapsed stacks kept in {raw} (flamegraph.pl or speedscope read them)")


if __name__ == "__main__":
    main()
