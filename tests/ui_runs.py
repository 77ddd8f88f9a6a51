"""Runs written straight into a local run store for the web page's tests, and `sparkjobs ui`
started on it as a real subprocess.

The records, metric series, logs, artifacts and snapshots are written through the same
RunRepository and SnapshotStore a real run uses, so the page reads exactly what a run leaves.
No Spark job is needed to show a page.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import select
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sparkjobs.runs import Artifact, RunEnvironment, RunRecord, RunRepository, RunStatus
from sparkjobs.snapshot import build_snapshot
from sparkjobs.snapshot_store import SnapshotStore
from sparkjobs.storage.local import LocalStore

from helpers import make_project, write

XSS = "<script>alert('x')</script>"
#: The Python dependencies run NEW shipped (issue 12).
ENVIRONMENT = RunEnvironment("9f" * 32, "3.8", "manylinux2014_x86_64", ("msgpack==1.0.8", "tabulate==0.9.0"))
OLD, NEW, FAILED, HOSTILE, RUNNING = (
    "20261201T090000000Z-aaaaaa", "20261201T100000000Z-bbbbbb", "20261201T110000000Z-cccccc",
    "20261201T120000000Z-dddddd", "20261201T130000000Z-eeeeee",
)


def png_bytes() -> bytes:
    """A real chart a training script would save, drawn by matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(4, 2.5), dpi=80)
    axes.plot([1, 2, 3, 4, 5], [0.6, 0.75, 0.84, 0.9, 0.95], marker="o")
    axes.set_title("accuracy by epoch")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    pyplot.close(figure)
    return buffer.getvalue()


@dataclass
class UiStore:
    home: Path
    project: Path
    repo: RunRepository
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)  # run id → path → bytes

    def add_run(self, run_id: str, *, status: RunStatus = RunStatus.COMPLETED, script: str = "train.py",
                args: tuple[str, ...] = (), target: str = "local", metrics: dict | None = None,
                series: dict[str, list] | None = None, params: dict | None = None, outputs: dict[str, bytes] | None = None,
                log: str = "", snapshot: str = "", inputs: tuple = (), error: str | None = None,
                environment: RunEnvironment | None = None) -> RunRecord:
        prefix = self.repo.run_prefix(run_id)
        artifacts = []
        for path, data in (outputs or {}).items():
            self.repo.store.put_bytes(f"{prefix}/{path}", data)
            artifacts.append(Artifact(path, len(data), hashlib.sha256(data).hexdigest()))
        self.files[run_id] = dict(outputs or {})
        lines = [json.dumps({"name": name, "value": value, "step": step, "time": "2026-12-01T10:00:00Z"})
                 for name, values in (series or {}).items() for step, value in enumerate(values)]
        if lines:
            self.repo.store.put_bytes(f"{prefix}/metrics.jsonl", ("\n".join(lines) + "\n").encode())
        self.repo.store.put_bytes(self.repo.log_key(run_id), log.encode())
        started = f"{run_id[:4]}-{run_id[4:6]}-{run_id[6:8]}T{run_id[9:11]}:{run_id[11:13]}:{run_id[13:15]}.000Z"
        ended = None if status is RunStatus.RUNNING else started.replace(":00.000Z", ":42.500Z")
        record = RunRecord(
            id=run_id, project="demo", target=target, script=script, args=args, status=status, started_at=started,
            snapshot=snapshot, ended_at=ended, exit_code=None if ended is None else (0 if status is RunStatus.COMPLETED else 3),
            artifacts=tuple(artifacts), log=self.repo.log_key(run_id), error=error, metrics=metrics or {},
            params=params or {}, inputs=tuple(inputs), environment=environment,
        )
        self.repo.save(record)
        return record

    def snapshot(self, master: str) -> str:
        """Store a snapshot of the project with the compute's master set to ``master``."""
        compute = self.project / "aml_config" / "local.compute"
        compute.write_text(compute.read_text().replace("master: local[1]", f"master: {master}").replace(
            "master: local[2]", f"master: {master}"))
        snapshot = build_snapshot(self.project, cap_bytes=None)
        SnapshotStore(self.repo.store).save(snapshot)
        return snapshot.digest


def make_ui_store(tmp: Path) -> UiStore:
    """Five runs of project 'demo': two comparable training runs, a failed one, one whose metric
    name, arg and file name are hostile, and one still running."""
    project = make_project(tmp / "project", tmp / "share")
    write(project / "train.py", "print('training')\n")
    ui = UiStore(tmp / "home", project, RunRepository(LocalStore(tmp / "home")))
    csv = b"sepal_length,sepal_width,species\n5.1,3.5,setosa\n4.9,3.0,setosa\n6.3,3.3,virginica\n"
    old_snapshot, new_snapshot = ui.snapshot("local[1]"), ui.snapshot("local[2]")
    ui.add_run(OLD, args=("--alpha", "0.5"), params={"alpha": 0.5, "l1_ratio": 0.0}, snapshot=old_snapshot,
               metrics={"accuracy": 0.84, "rmse": 0.41}, series={"accuracy": [0.5, 0.7, 0.8, 0.84], "rmse": [0.9, 0.6, 0.45, 0.41]},
               outputs={"outputs/model.pkl": b"model trained with alpha 0.5", "outputs/predictions.csv": csv},
               log="starting\nepoch 1\nepoch 2\ndone\n")
    ui.add_run(NEW, args=("--alpha", "0.1"), params={"alpha": 0.1, "l1_ratio": 0.0}, snapshot=new_snapshot,
               metrics={"accuracy": 0.95, "rmse": 0.22}, series={"accuracy": [0.6, 0.8, 0.9, 0.93, 0.95], "rmse": [0.8, 0.5, 0.3, 0.25, 0.22]},
               outputs={"outputs/model.pkl": b"model trained with alpha 0.1 \x00\x01\x02", "outputs/predictions.csv": csv,
                        "outputs/accuracy.png": png_bytes(),
                        "outputs/summary.json": json.dumps({"accuracy": 0.95, "classes": ["setosa", "virginica"]}).encode(),
                        "outputs/notes.txt": b"alpha 0.1 works best\n",
                        "outputs/numbers/part-00000.csv": b"n\n1\n2\n", "outputs/numbers/_SUCCESS": b""},
               inputs=({"reference": f"run:{OLD}/outputs/model.pkl", "run": OLD, "path": "outputs/model.pkl",
                        "resolved": str(ui.home / "runs" / OLD / "outputs" / "model.pkl")},),
               environment=ENVIRONMENT,
               log="".join(f"epoch {n}: accuracy {0.6 + n / 20:.2f}\n" for n in range(8)))
    ui.add_run(FAILED, status=RunStatus.FAILED, script="fail.py", target="cluster", snapshot=old_snapshot,
               error="The job exited with code 3.", log="Traceback (most recent call last):\nValueError: bad data\n")
    ui.add_run(HOSTILE, args=("--name", XSS), params={XSS: XSS}, metrics={XSS: 1.0}, series={XSS: [3.0, 2.0, 1.0]},
               outputs={f"outputs/{XSS}.txt": XSS.encode(), "outputs/evil.svg":
                        b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><script>alert(1)</script>'
                        b'<rect width="40" height="40" fill="red"/></svg>'},
               log=f"printing {XSS}\n")
    ui.add_run(RUNNING, status=RunStatus.RUNNING, log="step 1 of 3\n")
    return ui


class UiProcess:
    """`sparkjobs ui` in a subprocess, stopped by its pid."""

    def __init__(self, *args: str, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "sparkjobs.cli", "ui", *args], env=env, cwd=cwd,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.url = ""

    def wait_for_url(self, seconds: float = 60) -> str:
        """The URL it prints once it listens; bounded by ``seconds``."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], seconds)
        line = self.process.stdout.readline() if ready else ""
        if "http://" not in line:
            self.stop()
            raise AssertionError(f"sparkjobs ui did not start: {line!r} {self.process.stderr.read() if self.process.stderr else ''}")
        self.url = line[line.index("http://"):].split()[0].rstrip("/")
        return self.url

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def ui_env(store: UiStore) -> dict[str, str]:
    env = dict(os.environ)
    env["SPARKJOBS_HOME"] = str(store.home)
    env.pop("SPARKJOBS_HISTORY", None)
    return env
