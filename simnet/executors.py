"""Where learning jobs run: in this process, or ahead of the clock in a pool of processes.

The simulation runtime submits a :class:`~learning.jobs.Job` as soon as an actor asks for
it, waits the job's compute time in virtual time, and only then takes the result (DESIGN
rule 4), so jobs whose virtual intervals overlap run side by side in wall time. A job is
a pure function of its arguments (its seed among them) and every executor runs it with
the scenario's ``execution.threads`` torch threads, so results do not depend on the
executor, the number of workers or the order in which jobs finish.

* ``inline`` — the job runs at once, in this process (no overlap; the default).
* ``pool`` — ``workers`` spawned processes. A worker rebuilds each job's owner from its
  recipe (the owner's pickle, made once per owner and cached by the worker), so models
  never travel; states and data travel as tensors.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from abc import ABC, abstractmethod
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import torch

from learning.jobs import Job


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
        """Release the executor's workers (running jobs are abandoned)."""


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


def _run_in_worker(recipe: bytes, method: str, args: bytes) -> bytes:
    """Run ``method`` of the owner ``recipe`` builds on the pickled ``args``; the result
    pickled. Tensors cross as plain pickle bytes: one copy, where multiprocessing's
    tensor sharing would set up shared memory for every tensor of a state."""
    owner = _owners.get(recipe)
    if owner is None:
        owner = _owners[recipe] = pickle.loads(recipe)
    return pickle.dumps(getattr(owner, method)(*pickle.loads(args)))


class PoolExecutor(Executor):
    """``workers`` spawned processes (spawned, not forked: a fork of a process whose torch
    has run threads can deadlock), each running jobs with ``threads`` torch threads."""

    def __init__(self, workers: int, threads: int) -> None:
        super().__init__()
        spawn = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(
            workers, mp_context=spawn, initializer=_start_worker, initargs=(threads,)
        )
        self._recipes: dict[int, tuple[Any, bytes]] = {}
        self._shipped: set[Future] = set()
        """Futures of jobs run by a worker: their results come back pickled."""

    def _recipe(self, owner: Any) -> bytes:
        held = self._recipes.get(id(owner))
        if held is None:  # the owner is kept with it, so its id is not reused
            held = self._recipes[id(owner)] = (owner, pickle.dumps(owner))
        return held[1]

    def _start(self, job: Job) -> Future:
        args = pickle.dumps(job.args)
        future = self.pool.submit(_run_in_worker, self._recipe(job.owner), job.method, args)
        self._shipped.add(future)
        return future

    def take(self, future: Future) -> Any:
        result = super().take(future)
        if future not in self._shipped:
            return result
        self._shipped.discard(future)
        return pickle.loads(result)

    def drop(self, future: Future) -> None:
        self._shipped.discard(future)
        super().drop(future)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def default_workers() -> int:
    """One worker per core."""
    return max(1, os.cpu_count() or 1)
