"""Batching: one worker thread per served system, answering queued requests together.

The worker takes every waiting request with the same decoding settings (up to `max_batch`) and
answers them in one `system.batch` call, so concurrent clients share a forward pass instead of
queueing for it. A full queue answers 503, which the `openai` client retries with backoff.
"""

import copy
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from compoundai.contract import Answer
from compoundai.generators.base import GenerationConfig
from compoundai.serve.protocol import ServeError, ServeSettings
from compoundai.system import CompoundSystem

log = logging.getLogger("compoundai.serve")


@dataclass
class _Job:
    text: str
    config: GenerationConfig
    future: Future[Answer] = field(default_factory=Future)


class Batcher:
    """One worker thread that answers queued requests for one system in batches.

    Requests whose decoding settings match are answered together with one `system.batch`
    call; a request with other settings waits for the next batch. `submit` raises a 503
    `ServeError` when `max_queue` requests are already waiting.
    """

    def __init__(self, system: CompoundSystem, settings: ServeSettings) -> None:
        self.system = system
        self.settings = settings
        self.queue: queue.Queue[_Job | None] = queue.Queue()
        self.batches = 0
        self.answered = 0
        self._held: list[_Job] = []
        self._thread = threading.Thread(
            target=self._run, name=f"compoundai-serve-{system.name}", daemon=True
        )
        self._thread.start()

    def submit(self, text: str, config: GenerationConfig) -> Future[Answer]:
        if self.queue.qsize() + len(self._held) >= self.settings.max_queue:
            raise ServeError(
                503,
                f"server busy: {self.settings.max_queue} requests are waiting; retry later",
                type="server_error",
                code="overloaded",
            )
        job = _Job(text, config)
        self.queue.put(job)
        return job.future

    def close(self) -> None:
        self.queue.put(None)
        self._thread.join(timeout=30)

    def _next_batch(self) -> list[_Job] | None:
        first = self._held.pop(0) if self._held else self.queue.get()
        if first is None:
            return None
        batch = [first]
        deadline = time.monotonic() + self.settings.batch_wait_ms / 1000
        # Held jobs with the same settings go first (they have waited longest).
        for job in list(self._held):
            if len(batch) < self.settings.max_batch and job.config == first.config:
                self._held.remove(job)
                batch.append(job)
        while len(batch) < self.settings.max_batch:
            timeout = deadline - time.monotonic()
            try:
                waiting = (
                    self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
                )
            except queue.Empty:
                break
            if waiting is None:
                self.queue.put(None)  # stop after this batch
                break
            if waiting.config == first.config:
                batch.append(waiting)
            else:
                self._held.append(waiting)
        return batch

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            live = [j for j in batch if j.future.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                self._answer(live)
            except Exception as exc:
                # One request that breaks the system must not fail the others batched with
                # it: answer them one at a time, so only the culprit gets the error.
                if len(live) == 1:
                    self._fail(live[0], exc)
                    continue
                for job in live:
                    try:
                        self._answer([job])
                    except Exception as one:
                        self._fail(job, one)

    def _answer(self, jobs: list[_Job]) -> None:
        system = self.system
        if jobs[0].config != system.generation:
            system = copy.copy(system)
            system.generation = jobs[0].config
        answers = system.batch([j.text for j in jobs])
        if len(answers) != len(jobs):
            raise RuntimeError(f"{len(jobs)} inputs, {len(answers)} answers")
        self.batches += 1
        self.answered += len(jobs)
        for job, answer in zip(jobs, answers, strict=True):
            job.future.set_result(answer)

    @staticmethod
    def _fail(job: _Job, exc: Exception) -> None:
        log.error("a request failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
        if not job.future.done():
            job.future.set_exception(exc)
