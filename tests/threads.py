"""Test work on several threads at once, whose errors fail the test."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

Arg = TypeVar("Arg")


def run_threads(work: Callable[[Arg], None], args: Iterable[Arg], timeout: float = 60) -> None:
    """Run ``work(arg)`` for every arg, each on a thread of its own, and wait for all; the
    first error raised on any of them is raised here (a thread's error is otherwise only
    printed), as is a thread still running after ``timeout`` seconds."""
    errors: list[BaseException] = []

    def run(arg: Arg) -> None:
        try:
            work(arg)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(arg,)) for arg in args]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if errors:
        raise errors[0]
    if any(thread.is_alive() for thread in threads):
        raise AssertionError(f"a thread was still running after {timeout} s")
