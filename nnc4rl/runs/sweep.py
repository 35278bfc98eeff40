"""Sweeps: train every missing run of a profile into the run store, locally or on Ray.

``nnc4rl sweep --profile P [--figure fig4] [--executor local|ray] [--workers N] [--address ADDR]
[--dry-run] [--force]``. Before starting it prints how many runs are missing, the env steps to
train and an estimated wall time on the reference machine (``nnc4rl/profiles/machine.yml``);
while running a progress bar over runs; at the end the runs that failed and why. A failed run
never stops the others; finished runs are reused, and an unfinished run continues from its
checkpoint (``data/runs/<profile>/.<id>.checkpoint``), so a killed sweep restarts where it
stopped. Workers die with the sweep however it is killed (``kill -9`` included).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from nnc4rl.core.config import MAX_WORKERS, ConfigError, check_int
from nnc4rl.runs.checkpoint import checkpoint_problem, has_checkpoint
from nnc4rl.runs.lock import RunLock, lock_path
from nnc4rl.runs.profiles import load_profile, machine_speeds
from nnc4rl.runs.spec import RunSpec, resolve
from nnc4rl.runs.store import RunStore, RunTask, data_root, execute, run_id, run_key

EXECUTORS = ("local", "ray")
# Ray re-runs a task whose node or worker died this many times (it continues from its
# checkpoint when the node sees the store).
RAY_MAX_RETRIES = 3


def tasks_of(
    profile: str, figure: str | None = None, envs: str | list[str] | None = None
) -> list[RunTask]:
    """Every run of ``profile`` (of ``figure`` / ``envs`` if given), resolved and identified.

    :param envs: an env id or a list of them (``None`` / empty: all); an env the profile does
        not have raises :class:`ConfigError` naming the ones it has.
    """
    import warnings

    prof = load_profile(profile)
    cache: dict[tuple, tuple[RunSpec, dict]] = {}
    out = []
    for group in prof.select(figure, envs):
        for cell in group.cells():
            spec = RunSpec(**cell)
            ck = (spec.algo, spec.env, spec.arch, repr(sorted(spec.overrides.items())))
            if ck not in cache:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    try:
                        cache[ck] = resolve(spec)
                    except ConfigError as err:  # name where the bad setting is
                        raise ConfigError(f"profile {prof.name!r}, group {group.name!r}: "
                                          f"{err}") from None  # fmt: skip
            arch, hyper = cache[ck][0].arch, cache[ck][1]
            spec = replace(spec, arch=arch)
            key = run_key(spec, hyper)
            out.append(RunTask(profile=prof.name, group=group.name, figure=group.figure,
                               spec=spec, hyper=hyper, key=key, run_id=run_id(key),
                               keep_policy=group.keep_policy, train_steps=group.train_steps,
                               checkpoint_every=group.checkpoint_every))  # fmt: skip
    return out


def estimate_seconds(task: RunTask) -> float:
    """Estimated wall time of one run on the reference machine (training + evaluation)."""
    speeds = machine_speeds()
    algo, arch = task.spec.algo, task.spec.arch
    train_speed = speeds["train_steps_per_s"].get(f"{algo}/{arch}", 50)
    evaluation = task.hyper["evaluation"]
    n_evals = task.train_steps // evaluation["eval_freq"] + 2

    # an algorithm without its own measured evaluation speeds is costed like SAC (a MuJoCo-sized
    # MLP playing MuJoCo episodes)
    def per_algo(key: str) -> float:
        return speeds[key].get(algo, speeds[key]["sac"])

    eval_steps = n_evals * evaluation["eval_episodes"] * per_algo("eval_episode_steps")
    return (
        per_algo("overhead_s")
        + task.train_steps / train_speed
        + eval_steps / per_algo("eval_steps_per_s")
    )


def schedule_seconds(durations: list[float], workers: int) -> float:
    """Wall time of running ``durations`` on ``workers`` (longest first, greedy)."""
    loads = [0.0] * max(1, min(workers, len(durations)))  # more workers than runs: idle
    for d in sorted(durations, reverse=True):
        loads[loads.index(min(loads))] += d
    return max(loads)


def human_time(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``7.2 h`` or ``12.3 days``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@dataclass
class SweepResult:
    """What a sweep found and did; ``failed`` maps run id to a one-line reason, ``skipped`` to
    the other sweep that was training it (its lock's owner)."""

    total: int
    reused: int
    ran: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    not_started: list[str] = field(default_factory=list)  # they would not fit the time limit


def _die_with(parent: int) -> None:
    """Make this worker die when the sweep process ``parent`` dies, however it dies.

    ``kill -9`` of the sweep runs no handler, so the kernel must do it: Linux's
    ``prctl(PR_SET_PDEATHSIG, SIGKILL)``. A watchdog thread that polls ``os.getppid()`` covers
    other systems (and a parent that died before ``prctl``). The killed run keeps its checkpoint,
    so the next sweep continues it.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass  # the watchdog below still works

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)

    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _init_worker(parent: int | None = None) -> None:
    import warnings

    if parent is not None:
        _die_with(parent)
        # Ctrl-C reaches the whole process group: the sweep stops its workers itself (no
        # traceback of each worker on the terminal)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings.simplefilter("ignore", DeprecationWarning)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def run_task(
    task: RunTask, store_root: str | None = None, store_id: str | None = None
) -> tuple[str, dict[str, bytes] | None, str]:
    """Worker entry point: ``(run id, files or None, error line)``; never raises.

    :param store_root: the run store's folder as the driver sees it, and ``store_id`` its
        :meth:`RunStore.identity`: where this worker sees the same store, the run checkpoints
        there (:func:`nnc4rl.runs.store.execute`).
    """
    try:
        import torch

        torch.set_num_threads(task.spec.threads)
        return task.run_id, execute(task, store_root, store_id), ""
    except Exception as err:  # a failed run must not stop the sweep
        line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        where = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
        loc = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
        return task.run_id, None, f"{type(err).__name__}: {line}{loc}"


def _local(
    tasks: list[RunTask], workers: int, store: RunStore, done: Callable, claim: Callable
) -> None:
    """Run ``tasks`` in a process pool, at most ``workers`` at a time, each only once
    ``claim(task)`` has taken its lock (so a second sweep on the store takes the others)."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(os.getpid(),))  # fmt: skip
    where = (str(store.root), store.identity())
    todo, futures = iter(tasks), {}
    try:
        while True:
            for t in todo:  # claim runs only as workers free up
                if len(futures) >= workers:
                    todo = iter([t, *todo])
                    break
                if claim(t):
                    futures[pool.submit(run_task, t, *where)] = t
            if not futures:
                break
            finished, _ = wait(futures, return_when=FIRST_COMPLETED)
            for fut in finished:
                t = futures.pop(fut)
                try:
                    done(*fut.result())
                except BrokenProcessPool:
                    done(t.run_id, None, "worker process died (killed or out of memory)")
    except BaseException:  # interrupted or killed: take the workers down with the sweep
        procs = list((pool._processes or {}).values())
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(timeout=10)
        pool.shutdown(wait=False, cancel_futures=True)
        store.clean_partials()  # the work folders of the workers just stopped
        raise
    pool.shutdown()


def terminate_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit`` so a killed sweep stops its workers too."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def _check_address(address: str) -> None:
    """One clear error line when ``host:port`` does not accept connections."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"address={address!r} is invalid: use HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise ConfigError(
            f"address={address!r} is unreachable ({err.strerror or err}): give the HOST:PORT of a "
            "running Ray head, or omit --address for a local Ray"
        ) from None


def _ray(
    tasks: list[RunTask], workers: int, address: str | None, store: RunStore, done: Callable
) -> None:
    import ray

    started = False
    if not ray.is_initialized():
        try:
            # without --address a new local instance, never whatever cluster runs nearby
            ray.init(address=address or "local", num_cpus=None if address else workers,
                     include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})  # fmt: skip
        except Exception as err:
            line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"address={address!r}: cannot start or reach Ray ({line})") from None
        started = True
    try:
        remote = ray.remote(run_task)
        where = (str(store.root.resolve()), store.identity())
        # A task whose node or worker dies is run again (up to RAY_MAX_RETRIES times); a run
        # that fails by itself returns its error instead of raising, so it is never retried.
        pending = [remote.options(num_cpus=t.spec.threads, max_retries=RAY_MAX_RETRIES)
                   .remote(t, *where) for t in tasks]  # fmt: skip
        by_ref = dict(zip(pending, tasks, strict=True))
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                result = ray.get(ready[0])
            except Exception as err:  # the task's node or worker died more often than retried
                line = str(err).strip().splitlines()[0] if str(err).strip() else ""
                done(by_ref[ready[0]].run_id, None, f"Ray task failed: {type(err).__name__}"
                     + (f" ({line[:200]})" if line else ""))  # fmt: skip
                continue
            done(*result)
    finally:
        if started:
            ray.shutdown()


class QuietPipe:
    """A text stream that stops writing, silently, once its reader is gone
    (``nnc4rl sweep --dry-run | head -1``): no BrokenPipeError traceback, and a sweep that is
    training goes on."""

    def __init__(self, stream):
        self.stream, self.broken = stream, False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                self.stream.write(text)
                self.stream.flush()
            except BrokenPipeError:
                self.broken = True
                # the interpreter flushes stdout at exit: point it at /dev/null first
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.stream.fileno())
                os.close(devnull)
        return len(text)

    def flush(self) -> None:
        pass


def sweep(
    profile: str,
    figure: str | None = None,
    envs: str | list[str] | None = None,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    data: str | Path | None = None,
    progress: bool | None = None,
    out=None,
    time_limit: float | None = None,
) -> SweepResult:
    """Make every run of ``profile`` (``figure``, ``envs``) exist in the run store.

    :param envs: an env id or a list of them (``None`` / empty: all of the profile).
    :param workers: parallel runs (default: the CPU count divided by the runs' torch threads; for
        Ray without ``address``, the CPUs of the local instance).
    :param data: the data folder (default ``<repo root>/data``); runs go to ``data/runs/<profile>``.
    :param out: stream for the report (default stdout).
    :param time_limit: minutes this sweep may take (a cluster job's walltime, a machine that must
        be handed back): a run starts only while its estimated duration fits in the time left, so
        every run started finishes and commits; the rest wait for the next sweep. Local executor
        only (Ray schedules every run at once).
    """
    out = out or sys.stdout
    if executor not in EXECUTORS:
        raise ConfigError(f"executor={executor!r} is invalid: choose one of {', '.join(EXECUTORS)}")
    if workers is not None:
        check_int(workers, "workers", maximum=MAX_WORKERS)
    if address and executor != "ray":
        raise ConfigError(f"address={address!r} needs --executor ray")
    if address and executor == "ray":
        _check_address(address)
    if time_limit is not None:
        if not (isinstance(time_limit, int | float) and 0 < time_limit < float("inf")):
            raise ConfigError(f"time_limit={time_limit!r} is invalid: give minutes > 0")
        if executor != "local":
            raise ConfigError(f"time_limit={time_limit!r} needs --executor local")
    deadline = time.monotonic() + 60 * time_limit if time_limit is not None else None
    prof = load_profile(profile)
    tasks = tasks_of(profile, figure, envs)
    threads = max((t.spec.threads for t in tasks), default=1)
    workers = workers or max(1, (os.cpu_count() or 1) // threads)
    store = RunStore(data_root(data) / "runs" / prof.name)
    store.clean_partials()
    todo, corrupt = [], {}
    for t in tasks:
        state, reason = store.status(t.run_id, expect_policy=t.keep_policy)
        if force or state != "done":
            todo.append(t)
        if state == "corrupt":
            corrupt[t.run_id] = reason
    damaged = {}  # a checkpoint that cannot be resumed is named and dropped: the run restarts
    for t in todo:
        if problem := checkpoint_problem(store.checkpoint(t.run_id)):
            damaged[t.run_id] = problem.split(": delete it")[0]
    resumable = {t.run_id for t in todo if has_checkpoint(store.checkpoint(t.run_id))
                 and t.run_id not in damaged}  # fmt: skip
    ids = {t.run_id for t in tasks}
    strays = {rid: reason for rid in store.run_ids() if rid not in ids
              for state, reason in [store.status(rid)] if state == "corrupt"}  # fmt: skip
    # Checkpointed runs first, then seed by seed: a sweep stopped part-way leaves every
    # setting with about as many seeds (a usable, paired study) rather than some settings
    # complete and others missing.
    todo.sort(key=lambda t: (t.run_id not in resumable, t.spec.seed))
    scope = f"profile {prof.name}" + (f", {figure}" if figure else "")
    steps = sum(t.train_steps for t in todo)
    est = schedule_seconds([estimate_seconds(t) for t in todo], workers)
    print(
        f"{scope}: {len(tasks)} runs, {len(tasks) - len(todo)} finished, {len(todo)} to run; "
        f"{steps:,} env steps; estimated {human_time(est)} with {workers} worker(s) on the "
        f"reference machine (2 CPU cores)",
        file=out,
    )
    for reason in corrupt.values():
        print(f"  {reason}; it will be recomputed", file=out)
    for problem in damaged.values():
        print(f"  {problem}; it is {'to be ' * dry_run}discarded and the run restarts", file=out)
    for reason in strays.values():
        print(f"  {reason}; it is no run of this selection: remove or restore it", file=out)
    resumed = 0 if force else sum(t.run_id in resumable for t in todo)
    if resumed:
        print(f"  {resumed} unfinished run(s) continue from their checkpoint", file=out)
    if dry_run:
        for g in prof.select(figure, envs):
            gt = [t for t in todo if t.group == g.name]
            print(
                f"  {g.name} ({g.figure}): {g.algo} x {len(g.envs)} env(s) x {len(g.archs)} "
                f"arch(s) x {len(g.sparsities)} sparsities x {g.seeds} seed(s) = {g.n_runs} runs "
                f"of {g.train_steps:,} env steps (T = {g.T:,}); {len(gt)} to run, "
                f"{human_time(sum(estimate_seconds(t) for t in gt))} of single-worker time",
                file=out,
            )
        total = sum(estimate_seconds(t) for t in todo)
        if total > 86400:
            print(f"  on a cluster of 100 such workers: about {human_time(total / 100)}", file=out)
        print(f"  memory: {prof.memory}", file=out)
        return SweepResult(total=len(tasks), reused=len(tasks) - len(todo))

    result = SweepResult(total=len(tasks), reused=len(tasks) - len(todo))
    if not todo:
        return result
    for t in todo:  # recompute from scratch: no checkpoint of an earlier attempt is reused
        if force or t.run_id in damaged:
            shutil.rmtree(store.checkpoint(t.run_id), ignore_errors=True)
    from tqdm import tqdm

    show = progress if progress is not None else True
    bar = tqdm(total=len(todo), unit="run", desc=f"sweep {prof.name}", disable=not show,
               file=sys.stderr)  # fmt: skip

    locks: dict[str, RunLock] = {}

    def claim(t: RunTask) -> bool:
        """Take the run's lock; False (and the run counted) if another sweep trains it or has
        finished it since this sweep looked."""
        lock = RunLock(lock_path(store.root, t.run_id))
        if deadline is not None and time.monotonic() + estimate_seconds(t) > deadline:
            result.not_started.append(t.run_id)
        elif not lock.acquire():
            result.skipped[t.run_id] = f"another sweep trains it ({lock.owner()})"
        elif not force and store.status(t.run_id, t.keep_policy)[0] == "done":
            lock.release()
            result.reused += 1
        else:
            locks[t.run_id] = lock
            return True
        bar.update(1)
        return False

    def done(rid: str, files: dict[str, bytes] | None, error: str) -> None:
        if files is None:
            result.failed[rid] = error
        else:
            try:  # a run the store refuses is one failed run, never the end of the sweep
                if store.commit(rid, files, force=force or rid in corrupt):
                    result.ran.append(rid)
                else:  # another sweep stored it first: its copy is kept, this one discarded
                    result.reused += 1
            except (ConfigError, OSError) as err:
                result.failed[rid] = f"finished but not stored: {err}"
        if rid in result.failed:  # now, not only in the report at the end of a long sweep
            bar.write(f"  failed {rid}: {result.failed[rid]}", file=out)
        locks.pop(rid).release()  # after the commit: a run is never unlocked and unfinished
        bar.update(1)

    try:
        store.root.mkdir(parents=True, exist_ok=True)
        if executor == "local":
            _local(todo, min(workers, len(todo)), store, done, claim)
        else:  # Ray schedules every task at once: claim them all first
            claimed = [t for t in todo if claim(t)]
            if claimed:
                _ray(claimed, workers, address, store, done)
    finally:
        bar.close()
        for lock in locks.values():
            lock.release()
    skipped = f", {len(result.skipped)} skipped (another sweep trains them)" * bool(result.skipped)
    if result.not_started:
        skipped += f", {len(result.not_started)} not started (past the time limit)"
    print(f"{scope}: {len(result.ran)} run(s) trained, {result.reused} reused, "
          f"{len(result.failed)} failed{skipped}", file=out)  # fmt: skip
    for rid, reason in result.failed.items():
        print(f"  FAILED {rid}: {reason}", file=out)
    return result
