"""Where learning jobs run: in this process, or ahead of the clock in worker processes or
Ray actors; clients' local updates optionally batched.

The simulation runtime submits a :class:`~learning.jobs.Job` as soon as an actor asks for
it, waits the job's compute time in virtual time, and only then takes the result
(docs/design.md, rule 4), so jobs whose virtual intervals overlap run side by side in wall
time. A job is a pure function of its arguments (its seed among them) and every
executor runs it with the scenario's ``execution.threads`` torch threads, so results do
not depend on the executor, the number of workers or the order in which jobs finish.

* ``inline`` — the job runs at once, in this process (no overlap; the default).
* ``pool`` — ``workers`` spawned processes. A worker rebuilds each job's owner from its
  recipe (the owner's pickle, made once per owner and cached by the worker), so models
  never travel; states and data travel as tensors.
* ``ray`` — ``workers`` Ray actors that do the same, on a local Ray started here or on
  the cluster at ``address``; arguments and results travel through Ray's object store.
  A job goes to the actor with the fewest jobs in flight (ties: the lowest index).
  Needs the ``ray`` extra (``pip install -e ".[ray]"``).
* :class:`BatchingExecutor` wraps any of them (``execution.batch_clients``): local
  updates that wait together train as one vectorised job.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

import torch

from learning.jobs import Job


class WorkerLost(RuntimeError):
    """A worker process or actor ended while running a job (killed, or out of memory):
    the run cannot go on."""


@contextmanager
def losing_workers(who: str, hint: str) -> Iterator[None]:
    """Turn the loss of a worker process or Ray worker inside the block into
    :class:`WorkerLost` naming ``who`` and the ``hint``; other errors pass through."""
    try:
        yield
    except Exception as exc:
        ray = sys.modules.get("ray")
        lost = (BrokenProcessPool,) if ray is None else (
            BrokenProcessPool, ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
        )  # fmt: skip
        if isinstance(exc, lost):
            raise WorkerLost(f"{who} ended abruptly (killed, or out of memory?); {hint}") from None
        raise


class Executor(ABC):
    """Runs jobs: :meth:`submit` one, later :meth:`take` its result or :meth:`drop` it."""

    def __init__(self) -> None:
        self.in_flight = 0
        """Jobs submitted whose results have been neither taken nor dropped."""

    def submit(self, job: Job) -> Future:
        """Start ``job`` (now or soon; at once here if it is ``local``); the future gives
        its result."""
        self.in_flight += 1
        return _ran(job) if job.local else self._start(job)

    def take(self, future: Future) -> Any:
        """The result of a submitted job, waiting for it in wall time if need be."""
        self.in_flight -= 1
        return future.result()

    def drop(self, future: Future) -> None:
        """Give up a submitted job (its node crashed): cancelled if it has not started."""
        self.in_flight -= 1
        future.cancel()

    @abstractmethod
    def _start(self, job: Job) -> Future: ...

    def close(self) -> None:  # noqa: B027 (nothing to release by default)
        """Release the executor's workers (jobs not started are dropped)."""


def _ran(job: Job) -> Future:
    """``job`` run here and now, as a done future."""
    future: Future = Future()
    future.set_result(job.run())
    return future


class InlineExecutor(Executor):
    """Runs each job at once, in this process."""

    def _start(self, job: Job) -> Future:
        return _ran(job)


_owners: dict[bytes, Any] = {}
"""A pool worker's owners, rebuilt once each from their recipes."""


def _start_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _owner(recipe: bytes) -> Any:
    """The owner ``recipe`` builds, built once per process."""
    owner = _owners.get(recipe)
    if owner is None:
        owner = _owners[recipe] = pickle.loads(recipe)
    return owner


def _run_in_worker(recipe: bytes, method: str, args: bytes) -> bytes:
    """Run ``method`` of the owner ``recipe`` builds on the pickled ``args``; the result
    pickled. Tensors cross as plain pickle bytes: one copy, where multiprocessing's
    tensor sharing would set up shared memory for every tensor of a state."""
    return pickle.dumps(getattr(_owner(recipe), method)(*pickle.loads(args)))


class _Recipes:
    """Each owner's recipe (its pickle), made once; the owner is kept with it, so its id
    is not reused while the executor lives."""

    def __init__(self) -> None:
        self._held: dict[int, tuple[Any, bytes]] = {}

    def __call__(self, owner: Any) -> bytes:
        held = self._held.get(id(owner))
        if held is None:
            held = self._held[id(owner)] = (owner, pickle.dumps(owner))
        return held[1]


class PoolExecutor(Executor):
    """``workers`` spawned processes (spawned, not forked: a fork of a process whose torch
    has run threads can deadlock), each running jobs with ``threads`` torch threads."""

    def __init__(self, workers: int, threads: int) -> None:
        super().__init__()
        spawn = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(
            workers, mp_context=spawn, initializer=_start_worker, initargs=(threads,)
        )
        self._recipe = _Recipes()
        self._shipped: set[Future] = set()
        """Futures of jobs run by a worker: their results come back pickled."""

    def _start(self, job: Job) -> Future:
        args = pickle.dumps(job.args)
        future = self.pool.submit(_run_in_worker, self._recipe(job.owner), job.method, args)
        self._shipped.add(future)
        return future

    def take(self, future: Future) -> Any:
        with losing_workers("a pool worker process", "try fewer execution.workers"):
            result = super().take(future)
        if future not in self._shipped:
            return result
        self._shipped.discard(future)
        return pickle.loads(result)

    def drop(self, future: Future) -> None:
        self._shipped.discard(future)
        super().drop(future)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)  # queued jobs dropped


class RayExecutor(Executor):
    """``workers`` Ray actors, each running jobs with ``threads`` torch threads, on the
    Ray cluster at ``address`` (``None``: a local Ray started for this run)."""

    def __init__(self, workers: int, threads: int, address: str | None = None) -> None:
        super().__init__()
        import ray

        self._ray = ray
        self._started = start_ray(workers, address)
        worker = ray.remote(num_cpus=1)(_RayWorker)
        self._actors = [worker.remote(threads) for _ in range(workers)]
        self._load = [0] * workers
        self._where: dict[Future, int] = {}
        self._recipe = _Recipes()

    def _start(self, job: Job) -> Future:
        index = self._load.index(min(self._load))
        self._load[index] += 1
        ref = self._actors[index].run.remote(self._recipe(job.owner), job.method, *job.args)
        future = ref.future()
        self._where[future] = index
        return future

    def _settle(self, future: Future) -> None:
        index = self._where.pop(future, None)  # None: a local job
        if index is not None:
            self._load[index] -= 1

    def take(self, future: Future) -> Any:
        self._settle(future)
        with losing_workers("a Ray worker", "try fewer execution.workers"):
            return super().take(future)

    def drop(self, future: Future) -> None:
        self._settle(future)
        super().drop(future)

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        if self._started:
            self._ray.shutdown()


def start_ray(cpus: int, address: str | None) -> bool:
    """Connect to the Ray cluster at ``address``, or start a local Ray of ``cpus`` CPUs,
    unless Ray already runs here; whether it was started (then shut it down after)."""
    import ray

    if ray.is_initialized():
        return False
    local = {} if address else {"num_cpus": cpus}
    ray.init(address=address, include_dashboard=False, log_to_driver=False,
             configure_logging=False, **local)  # fmt: skip
    return True


class _RayWorker:
    """A Ray actor's state: its torch threads and the owners it has built."""

    def __init__(self, threads: int) -> None:
        torch.set_num_threads(threads)

    def run(self, recipe: bytes, method: str, *args: Any) -> Any:
        return getattr(_owner(recipe), method)(*args)


BATCH_CLIENTS = 32
"""Most jobs run as one batched job: a fixed number, so that batches (and results) do
not depend on how many workers there are."""
BATCH_MIN = 8
"""Fewest jobs worth a batched job: smaller groups run one by one (on 2 CPU cores a
vectorised step gains nothing below about 8 clients: ``bench/batched.py``)."""


class _Batch:
    """A batched job's future, shared by its members until each has taken its part (a
    ``single`` job's result is its only part)."""

    def __init__(self, inner: Executor, future: Future, members: int, single: bool) -> None:
        self.inner, self.future, self.left, self.single = inner, future, members, single
        self.results: Any = None

    def part(self, index: int) -> Any:
        if self.results is None:
            result = self.inner.take(self.future)
            self.results = [result] if self.single else result
        self.left -= 1
        return self.results[index]

    def drop(self) -> None:
        self.left -= 1
        if self.left == 0 and self.results is None:
            self.inner.drop(self.future)


class BatchingExecutor(Executor):
    """Runs batchable jobs (:attr:`Job.batch`) together on ``inner``.

    Such a job waits until its result is needed; then every waiting job of the same owner,
    ``batch`` and ``group`` — all asked for before the clock reached that point, so their
    virtual intervals overlap — runs as batched jobs of at most :data:`BATCH_CLIENTS`, in
    the order they were asked for; fewer than :data:`BATCH_MIN` run one by one. Batches
    depend only on the order of events in virtual time, so results are the same on every
    backend.
    """

    def __init__(self, inner: Executor) -> None:
        super().__init__()
        self.inner = inner
        self._waiting: dict[tuple, list[tuple[Job, Future]]] = {}
        self._key: dict[Future, tuple] = {}
        self._member: dict[Future, tuple[_Batch, int]] = {}
        self._direct: dict[Future, Future] = {}

    def _start(self, job: Job) -> Future:
        future: Future = Future()
        if job.batch is None:
            self._direct[future] = self.inner.submit(job)
        else:
            key = (id(job.owner), job.batch, job.group)
            self._waiting.setdefault(key, []).append((job, future))
            self._key[future] = key
        return future

    def _flush(self, key: tuple) -> None:
        """Start every job waiting under ``key``, in batches."""
        waiting = self._waiting.pop(key)
        if len(waiting) < BATCH_MIN:
            groups = [[member] for member in waiting]
        else:
            groups = [waiting[i : i + BATCH_CLIENTS] for i in range(0, len(waiting), BATCH_CLIENTS)]
        for members in groups:
            jobs = [job for job, _ in members]
            single = len(jobs) == 1
            if single:
                batched = jobs[0]
            else:
                columns = tuple(map(list, zip(*(j.args for j in jobs), strict=True)))
                flops = sum(j.flops for j in jobs)
                batched = Job(jobs[0].owner, str(jobs[0].batch), columns, flops)
            batch = _Batch(self.inner, self.inner.submit(batched), len(members), single)
            for index, (_, future) in enumerate(members):
                del self._key[future]
                self._member[future] = (batch, index)

    def take(self, future: Future) -> Any:
        if future in self._key:
            self._flush(self._key[future])
        if future in self._member:
            self.in_flight -= 1
            batch, index = self._member.pop(future)
            return batch.part(index)
        if future in self._direct:
            self.in_flight -= 1
            return self.inner.take(self._direct.pop(future))
        return super().take(future)  # a local job, done at once

    def drop(self, future: Future) -> None:
        if future in self._key:
            key = self._key.pop(future)
            self._waiting[key] = [(j, f) for j, f in self._waiting[key] if f is not future]
            if not self._waiting[key]:
                del self._waiting[key]
            self.in_flight -= 1
        elif future in self._member:
            self.in_flight -= 1
            self._member.pop(future)[0].drop()
        elif future in self._direct:
            self.in_flight -= 1
            self.inner.drop(self._direct.pop(future))
        else:
            super().drop(future)

    def close(self) -> None:
        self.inner.close()


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS keeps one (a
    container's or ``taskset``'s share), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_workers(threads: int = 1) -> int:
    """Workers of ``threads`` torch threads each, when the user sets no count: as many as
    :func:`available_cores` hold (workers × threads ≤ cores), at least one. ``threads``
    itself is never chosen from the host: results depend on it."""
    return max(1, available_cores() // threads)
