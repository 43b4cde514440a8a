"""Where a sweep's points run: on Dask distributed, or one after another in this process.

* ``workers ≥ 1``: a :class:`distributed.LocalCluster` of that many worker processes on this
  machine, one thread each, every address on the loopback interface (127.0.0.1);
* ``scheduler="tcp://host:8786"``: an existing Dask cluster (``dask scheduler`` / ``dask worker``,
  dask-jobqueue); its workers must see the sweep folder and the data at the same paths;
* ``workers == 0``: in process, in order (for debugging, and the reference of the tests).

Results stream back as points finish (``distributed.as_completed``). A worker process that dies
while running a point is replaced by its nanny and the scheduler gives the point to another worker
(up to ``distributed.scheduler.allowed-failures`` times, 3 by default), which resumes it from its
last checkpoint. A task's key is ``pcmsim-point-<id>``, so a client that reconnects to a cluster
still running a point attaches to that run instead of starting a second one.
"""

from __future__ import annotations

import importlib.util
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from .sweep_point import one_line, record_failure, run_point
from .sweep_spec import Point, SweepError

OnResult = Callable[[Point, dict[str, Any]], None]

LOCAL_CONFIG: dict[str, Any] = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
"""Dask's nannies start workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which turns off glibc's
adaptive mmap threshold: every large torch buffer is then mapped and unmapped afresh, and a point
ran 25–35 % slower than in process (``bench/sweep.py``). The local cluster leaves glibc's default."""


def run_points(todo: Sequence[tuple[Point, Path]], *, workers: int, scheduler: str | None, threads: int,
               on_result: OnResult, log: Callable[[str], Any]) -> None:
    """Run ``todo`` (points and their folders); call ``on_result(point, outcome)`` as each ends."""
    if not todo:
        return
    if scheduler is None and workers == 0:
        for point, folder in todo:
            on_result(point, run_point(point.config.to_dict(), str(folder), threads))
        return
    with dask_client(workers, scheduler, log) as client:
        _run_on(client, todo, threads, on_result)


def _run_on(client: Any, todo: Sequence[tuple[Point, Path]], threads: int, on_result: OnResult) -> None:
    from distributed import KilledWorker, as_completed

    futures = {}
    for i, (point, folder) in enumerate(todo):
        future = client.submit(run_point, point.config.to_dict(), str(folder.resolve()), threads,
                               key=f"pcmsim-point-{point.id}", priority=len(todo) - i)
        futures[future] = (point, folder)
    for future in as_completed(futures):
        point, folder = futures.pop(future)
        try:
            outcome = future.result()
        except KilledWorker:
            error = "worker died on every try (a crash or out of memory): the point was given up"
            outcome = _failed(folder, error)
        except Exception as exc:  # noqa: BLE001 - e.g. cancelled by a scheduler restart: recorded, sweep goes on
            outcome = _failed(folder, one_line(exc))
        future.release()
        on_result(point, outcome)


def _failed(folder: Path, error: str) -> dict[str, Any]:
    record_failure(folder, error)
    return {"status": "failed", "error": error, "resumed_from_epoch": None, "seconds": None}


CONNECT_TIMEOUT = "20s"
"""How long ``--scheduler ADDRESS`` waits for the Dask scheduler before a one-line error."""


@contextmanager
def dask_client(workers: int, scheduler: str | None, log: Callable[[str], Any]) -> Iterator[Any]:
    """A Dask client: of the cluster at ``scheduler``, else of a new loopback LocalCluster."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SweepError(f"--scheduler {scheduler}: cannot connect to a Dask scheduler there "
                             f"({one_line(exc)})") from None
        with client:
            n = len(client.scheduler_info().get("workers", {}))
            log(f"Dask scheduler {scheduler}: {n} worker(s) now" + _dashboard(client))
            yield client
        return
    with dask.config.set(LOCAL_CONFIG), LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        log(f"Dask LocalCluster: {workers} worker process(es), 1 thread each, scheduler {cluster.scheduler_address}"
            + _dashboard(client))
        try:
            yield client
        finally:
            _kill_workers(cluster)


def _kill_workers(cluster: Any) -> None:
    """SIGKILL the local worker processes before the cluster closes. On Ctrl-C a point stops at
    once instead of running on while the cluster closes (its atomic epoch checkpoints let the next
    run resume it); after the last point, idle workers need no graceful exit (every point's files
    are written before its task returns), which a closing cluster may wait 4 s for."""
    for nanny in list(getattr(cluster, "workers", {}).values()):
        pid = getattr(nanny, "pid", None)
        if pid:
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _dashboard(client: Any) -> str:
    link = client.dashboard_link if "dashboard" in client.scheduler_info().get("services", {}) else None
    if not link:
        return ""
    hint = "" if importlib.util.find_spec("bokeh") else " (pip install bokeh for its live plots)"
    return f"; dashboard {link}{hint}"
