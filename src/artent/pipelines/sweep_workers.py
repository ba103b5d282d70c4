"""Where a sweep's points run: one after another, one spawned process per point (``workers``
at a time), or as Ray tasks; a worker that dies fails its own point and the others go on.

Ray is imported only when asked for.
"""

from __future__ import annotations

import os
from pathlib import Path

from artent.errors import one_line
from artent.pipelines.points import failed_row, run_point

__all__ = ["RAY_MISSING", "connect_ray", "run_processes", "run_ray"]

RAY_MISSING = "Ray is not installed: pip install 'artent[ray]'"


def connect_ray(address: str, workers: int) -> bool:
    """Start (``local``) or join Ray; return whether this call did (and so shuts it down).

    Raises:
        ImportError: Ray is not installed.
        ValueError: a cluster address Ray cannot reach (one line naming it).
    """
    try:
        import ray
    except ImportError:
        raise ImportError(RAY_MISSING) from None
    if ray.is_initialized():
        return False
    if address == "local":
        env = {k: os.environ[k] for k in ("ARTENT_CACHE",) if k in os.environ}
        ray.init(
            num_cpus=workers if workers > 1 else os.cpu_count(),
            include_dashboard=False,
            runtime_env={"env_vars": env} if env else None,
            log_to_driver=False,
        )
        return True
    _check_reachable(address)
    try:
        ray.init(address=address)
    except Exception as e:  # noqa: BLE001 - ray raises several types for an unreachable cluster
        raise ValueError(f"--ray {address}: cannot connect ({one_line(e, typed=True)})") from None
    return True


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse a ``host:port`` (or ``ray://host:port``) address no TCP connection reaches.

    Ray itself retries an unreachable address for about a minute before it gives up.
    """
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        return  # "auto" and other forms are Ray's to resolve
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ValueError(f"--ray {address}: cannot connect ({e.strerror or e})") from None


def run_ray(points, out, kwargs) -> list[dict]:
    import ray  # lazy: Ray only when asked for

    task = ray.remote(num_cpus=1)(run_point)
    refs = [task.remote(p, str(out), **kwargs, single_thread=True) for p in points]
    rows = []
    for point, ref in zip(points, refs, strict=True):
        try:
            rows.append(ray.get(ref))
        except Exception as e:  # noqa: BLE001 - a worker that died fails its point alone
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            rows.append(failed_row(point, out, kwargs.get("grid_keys") or [], lines[0][:300]))
    return rows


def _worker(runner, out: str, kwargs: dict, conn) -> None:
    """A worker process: run the points it is sent, one at a time, until it is sent ``None``."""
    while (point := conn.recv()) is not None:
        conn.send(runner(point, out, **kwargs, single_thread=True))


def run_processes(points, out: Path, kwargs: dict, workers: int, runner=None) -> list[dict]:
    """The points on ``workers`` spawned processes, each running one point after another; a
    worker that dies (killed, out of memory) fails the point it was running alone, a new worker
    takes its place, and the others go on.

    Args:
        runner: what a worker calls (:func:`run_point`; the tests pass one that dies).
    """
    import multiprocessing as mp
    from multiprocessing.connection import wait

    runner = runner or run_point
    # spawn, not fork: forking a process that has started torch's thread pools can hang.
    ctx = mp.get_context("spawn")

    def start():
        here, there = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(runner, str(out), kwargs, there), daemon=True)
        proc.start()
        there.close()  # so that the worker's death reads as the end of the pipe here
        return proc, here

    rows: list[dict | None] = [None] * len(points)
    pending = list(enumerate(points))
    idle = [start() for _ in range(min(workers, len(points)))]
    busy: dict = {}  # parent end of the pipe -> (process, index of its point)
    try:
        while pending or busy:
            while pending and idle:
                proc, conn = idle.pop()
                i, point = pending[0]
                try:
                    conn.send(point)
                except OSError:  # died after its last row: replaced, the point goes again
                    proc.join()
                    idle.append(start())
                    continue
                pending.pop(0)
                busy[conn] = (proc, i)
            for conn in wait(list(busy)):
                proc, i = busy.pop(conn)
                try:
                    rows[i] = conn.recv()
                    idle.append((proc, conn))
                except EOFError:  # the worker died running this point
                    proc.join()
                    conn.close()
                    grid_keys = kwargs.get("grid_keys") or []
                    rows[i] = _dead_worker_row(points[i], out, proc, grid_keys)
                    if pending:
                        idle.append(start())
        for proc, conn in idle:
            conn.send(None)
            proc.join()
    finally:
        for proc, _ in [*idle, *busy.values()]:  # interrupted: no orphans
            if proc.is_alive():
                proc.terminate()
                proc.join()
    return rows


def _dead_worker_row(point: dict, out: Path, proc, grid_keys: list[str]) -> dict:
    """The failed row of a point whose worker died without a row (written so a rerun retries)."""
    code = proc.exitcode
    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    return failed_row(point, out, grid_keys, f"the worker process running this point died ({how})")
