"""Python dependencies on every submit: sparkjobs' content-addressed environments against the
anchor users have today, a venv-pack-style archive rebuilt and uploaded on every submit.

    python bench/env.py [--rounds 9]

1. First build of a 3-package environment (tabulate, msgpack, ujson: pure Python and native),
   with an empty pip cache, through ``sparkjobs env build``.
2. A warm run's overhead: ``sparkjobs run -c deps`` against the same run without dependencies
   (``-c plain``), alternating, medians compared. Target: <= 0.2 s. Framework Python keeps Spark's
   own start-up noise out of a difference this small.
3. The anchor, per submit: a fresh venv, ``pip install`` of the same pins (pip's cache warm, as a
   user's is), the site-packages packed as .tar.gz and uploaded (copied into a run store folder).

Everything runs in this one process run, against real pip and the real package index.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sparkjobs.storage.local import LocalStore  # noqa: E402

PINS = ("tabulate==0.9.0", "msgpack==1.0.8", "ujson==5.10.0")


def make_project(root: Path) -> None:
    (root / "aml_config").mkdir(parents=True)
    (root / "aml_config" / "local.compute").write_text(f"type: local\nnativeSharedDirectory: {root.parent}/share/\n")
    for name, extra in (("plain", ""), ("deps", "RequirementsFile: requirements.txt\n")):
        (root / "aml_config" / f"{name}.runconfig").write_text(
            f'Target: local\nFramework: Python\nArgumentVector: ["$file"]\n{extra}')
    (root / "requirements.txt").write_text("\n".join(PINS) + "\n")
    (root / "job.py").write_text("print('done')\n")


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"command failed ({done.returncode}): {' '.join(argv)}\n{done.stderr}")
    return elapsed


def anchor_submit(work: Path, store: LocalStore, env: dict[str, str], number: int) -> tuple[float, int]:
    """What a user does today before each submit: rebuild the venv, pack it, upload it."""
    start = time.perf_counter()
    venv = work / f"venv-{number}"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--root-user-action=ignore", "--target",
                    str(site), *PINS], check=True, env=env)
    archive = work / f"venv-{number}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(venv, arcname="venv")
    store.put_file(f"anchor/venv-{number}.tar.gz", archive)
    elapsed = time.perf_counter() - start
    size = archive.stat().st_size
    shutil.rmtree(venv)
    archive.unlink()
    return elapsed, size


def in_process(project: Path, env: dict[str, str], rounds: int) -> float:
    """The warm environment step of a run alone, as run_flow does it: the lookup and the run
    store's marker check. Milliseconds, median of many: free of start-up noise."""
    from sparkjobs.config import load_run_settings
    from sparkjobs.environments.build import environment_for, store_environment
    from sparkjobs.service import SparkJobs

    service = SparkJobs(env)
    settings = load_run_settings(project, "deps", env)
    store = service.history_store(settings.project)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        built = environment_for(settings, service.home, lambda message: None)
        assert built is not None and store_environment(built, store).uploaded_bytes == 0
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def import_cost(env: dict[str, str], rounds: int) -> float:
    """What a warm run pays once to load the environment modules, beyond what every run loads."""
    code = ("import time, sparkjobs.run_flow, sparkjobs.service, sparkjobs.storage.local\n"
            "start = time.perf_counter()\nimport sparkjobs.environments.build\nprint(time.perf_counter() - start)")
    return statistics.median(float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                                  check=True).stdout) for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    rounds = parser.parse_args().rounds
    base = Path(tempfile.mkdtemp(prefix="sparkjobs-bench-env-"))
    try:
        project = base / "proj"
        make_project(project)
        env = dict(os.environ, SPARKJOBS_HOME=str(base / "home"), PIP_CACHE_DIR=str(base / "pip-cache"))
        env.pop("SPARKJOBS_HISTORY", None)
        cli = [sys.executable, "-m", "sparkjobs.cli"]

        first = timed([*cli, "env", "build", "-c", "deps"], project, env)
        archive = next((base / "home" / "cache" / "environments").glob("*/archive.tar.gz"))
        print(f"1. first build of {len(PINS)} packages ({', '.join(PINS)}): {first:.2f} s, "
              f"archive {archive.stat().st_size / 1024:.0f} KiB")

        run = [*cli, "run", "-c"]
        for name in ("plain", "deps"):  # warm-up: snapshot stored, caches filled
            timed([*run, name, "job.py"], project, env)
        plain, deps, anchor, anchor_bytes = [], [], [], []
        store = LocalStore(base / "anchor-store")
        for i in range(rounds):
            order = ("plain", "deps") if i % 2 == 0 else ("deps", "plain")
            for name in order:
                (plain if name == "plain" else deps).append(timed([*run, name, "job.py"], project, env))
            seconds, size = anchor_submit(base, store, env, i)
            anchor.append(seconds)
            anchor_bytes.append(size)
        stored = sum(p.stat().st_size for p in (base / "home" / "environments").rglob("*") if p.is_file())
        p, d, a = statistics.median(plain), statistics.median(deps), statistics.median(anchor)
        overhead = d - p
        print(f"2. warm run, median of {rounds}: without dependencies {p:.3f} s, with them {d:.3f} s: difference "
              f"{overhead * 1000:+.0f} ms (fastest of each: {min(plain):.3f} s and {min(deps):.3f} s, "
              f"{(min(deps) - min(plain)) * 1000:+.0f} ms); whole-process times on this shared machine vary by more")
        step, imports = in_process(project, env, 200), import_cost(env, rounds)
        cost = step + imports
        print(f"   the environment step itself: {step * 1000:.2f} ms a run (median of 200, in process) plus "
              f"{imports * 1000:.1f} ms to load its modules (median of {rounds}): {cost * 1000:.1f} ms "
              f"(target <= 200 ms) {'OK' if cost <= 0.2 and overhead <= 0.2 else 'MISSED'}")
        print(f"3. anchor (fresh venv + pip install + tar.gz + upload) per submit, median of {rounds}: {a:.2f} s, "
              f"{statistics.median(anchor_bytes) / 1024:.0f} KiB uploaded every time")
        print(f"   sparkjobs per submit: {cost * 1000:.1f} ms and 0 bytes uploaded "
              f"(the archive, {stored / 1024:.0f} KiB with its manifest, went to the run store once)")
        print(f"   ratios: a whole submit with the anchor / with sparkjobs = {(p + a) / d:.1f}x; "
              f"the anchor's dependency step / sparkjobs' = {a / cost:.0f}x; "
              f"sparkjobs' first build / the anchor's every submit = {first / a:.2f}x")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
