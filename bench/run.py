"""`make bench`: authapp and the baseline side by side on one machine, in one run.

python -m bench.run            # BENCH_DURATION=5s for a quick try (bench/README.md)
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import calibrate, deploy, report, stack
from bench.deploy import say, show
from bench.options import Options
from bench.prepare import write_lines
from bench.scenarios import Bench, Files


def settings(opts: Options) -> dict[str, Any]:
    return {
        "duration_s": opts.duration,
        "connections": opts.connections,
        "flood_connections": opts.flood_connections,
        "many_connections": opts.many_connections,
        "wrk_threads": opts.wrk_threads,
        "users": opts.users,
        "api_keys": opts.api_keys,
        "ratelimit": deploy.ratelimit_note(opts),
        "gunicorn": deploy.gunicorn_note(),
        "baseline": deploy.baseline_note(),
        "authapp": deploy.AUTHAPP_NOTE,
        "environment": deploy.overrides(),
    }


def noise_note(machine: dict[str, Any]) -> str:
    """Ratios are taken in one run, but a busy machine still skews them: say how busy. The load
    at the end is the run's own (wrk and two servers); only the start tells of other work."""
    note = (
        f"load average {machine['loadavg_start'][0]} at the start and "
        f"{machine['loadavg_end'][0]} at the end on {machine['cores']} cores; wrk shares "
        "those cores with the servers"
    )
    if machine["loadavg_start"][0] > machine["cores"] / 2:
        note += ": other work was running before the run, so these figures are noisy"
    return note


def measure(opts: Options, workdir: Path, nonce: str) -> tuple[list[Any], calibrate.BcryptLimit]:
    with ExitStack() as exits:
        authapp = deploy.start_authapp(opts, exits, workdir, nonce)
        baseline, baseline_tokens = deploy.start_baseline(opts, exits, workdir, nonce)
        prepared = deploy.prepare_authapp(opts, authapp.server, workdir, nonce)
        files = Files(
            emails=prepared.emails,
            authapp_tokens=prepared.access_tokens,
            baseline_tokens=write_lines(workdir / "baseline-tokens.txt", baseline_tokens),
            refresh_tokens=prepared.refresh_tokens,
            api_keys=prepared.api_keys,
            captured=workdir / "refresh-pool.txt",
        )
        say(f"scenarios, {opts.duration:.0f} s each")
        bench = Bench(opts, authapp.server, baseline, files, nonce, log=show)
        rows = bench.run_all()
        return rows, bench.limit or calibrate.measure()


def main() -> None:
    opts = Options.from_env()
    deploy.check_prerequisites(opts)
    open_files = stack.raise_open_files()
    if open_files < opts.many_connections * 2 + 100:
        say(f"open-file limit {open_files}: too low for {opts.many_connections} connections")
    nonce = secrets.token_hex(4)
    workdir = Path(tempfile.mkdtemp(prefix="authapp-bench-"))
    document: dict[str, Any] = {
        "kind": "bench",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": deploy.machine(),
        "settings": settings(opts),
    }
    say(deploy.ratelimit_note(opts))
    try:
        rows, limit = measure(opts, workdir, nonce)
    finally:
        if opts.keep_logs:
            say(f"server logs and data files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    document["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    document["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    figures = report.Figures(rows, limit)
    found = report.targets(figures)
    document |= {
        "bcrypt": limit.as_json(),
        "rows": [row.as_json() | {"ratio": report.ratio_text(row, figures)} for row in rows],
        "targets": [target.as_json() for target in found],
    }
    document["note"] = noise_note(document["machine"])
    show(f"\n{report.table(rows, figures, found)}\n")
    say(document["note"])
    say(f"written: {report.write(document).relative_to(stack.ROOT)}")
    check_floor(report.floor_target(figures))


def check_floor(floor: report.Target) -> None:
    """The run fails when the baseline is no floor: every ratio to it would flatter authapp."""
    if floor.passed is not False:
        return
    say(
        f"FAIL: the baseline is not a floor. Its /me answered {floor.figure:.2f}x its own /ping "
        f"(under {floor.limit:.2f}x): something besides a JWT decode and one SELECT slows it "
        "(a configuration, logging, a hook, a small pool, a busy machine), so the ratios above "
        'understate what authapp adds. See bench/README.md, "The floor".'
    )
    raise SystemExit(1)


if __name__ == "__main__":
    main()
