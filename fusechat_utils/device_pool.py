"""Share one node's GPUs among work items: each item waits for `tp` free devices, runs on them, gives them back.

Usage: `run_items([Item("gemma part 1/4", 2, lambda devices: ...), ...], devices=[0, 1, 2, 3, 4, 5, 6, 7])`.

02_sampling's vLLM workers are the items (one per source replica, `sampling.sample_on_devices`). Items start in
order of decreasing `tp`, each as soon as its devices are free; an item that does not fit yet does not hold back
a smaller one behind it that does (first fit), so no device idles while an item that fits still waits. A failed
item does not stop the others: every item runs, then one error names every failed item. Imports only the standard
library (no vLLM, no torch).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    name: str  # what an error names, e.g. "Qwen2.5-72B-Instruct part 2/2"
    tp: int  # devices it needs at once
    run: Callable[[list[int]], None]  # called in its own thread with the device ids it holds


def parse_devices(text: str) -> list[int]:
    """'0,1, 3' -> [0, 1, 3]; '' -> []. ValueError saying what is wrong (a non-integer, a negative, a repeat)."""
    if not text.strip():
        return []
    ids = []
    for part in text.split(","):
        part = part.strip()
        if not (part.isascii() and part.isdigit()):
            raise ValueError(f"{part!r} is not a device id (comma-separated non-negative integers, e.g. '0,1,2,3')")
        if int(part) in ids:
            raise ValueError(f"device {int(part)} is listed twice")
        ids.append(int(part))
    return ids


def visible_devices(ids: list[int], inherited: str | None) -> str:
    """CUDA_VISIBLE_DEVICES for a worker on `ids`, counted among the GPUs this process sees: when it was itself
    limited (`inherited`: its CUDA_VISIBLE_DEVICES, e.g. a Slurm or local array task's), id k is its k-th GPU."""
    if not inherited or not inherited.strip():
        return ",".join(map(str, ids))
    seen = [d.strip() for d in inherited.split(",") if d.strip()]
    beyond = [i for i in ids if i >= len(seen)]
    if beyond:
        raise ValueError(f"devices {beyond}: this process sees only {len(seen)} GPU(s) (CUDA_VISIBLE_DEVICES="
                         f"{inherited}); ids count from 0 among them")
    return ",".join(seen[i] for i in ids)


@contextlib.contextmanager
def _interrupt_flag() -> Iterator[threading.Event]:
    """An event set by Ctrl-C for the duration. The handler is our own, not Python's default: a process started in
    the background by a shell without job control inherits SIGINT ignored, and then no KeyboardInterrupt would ever
    reach the waiting loop. Off the main thread (where signals cannot be handled) the event is never set."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGINT, lambda *_: flag.set())
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _join(thread: threading.Thread, interrupted: threading.Event) -> None:
    while thread.is_alive():
        thread.join(0.1)
        if interrupted.is_set():
            raise KeyboardInterrupt


def run_items(items: list[Item], devices: list[int], cancel: Callable[[], None] | None = None) -> None:
    """Run every item on its share of `devices` (see the module docstring); returns when all have ended.

    Raises RuntimeError naming each failed item after the others ended. `cancel` is called when this call itself
    is interrupted (Ctrl-C): it must end the items' work (their processes), which the threads then report."""
    too_big = [it.name for it in items if not 1 <= it.tp <= len(devices)]
    if too_big:
        raise ValueError(f"{too_big}: need more devices than the {len(devices)} given ({devices}), or fewer than 1")
    pending = sorted(items, key=lambda it: -it.tp)  # stable: equal tp keep their order
    free = list(devices)
    failed: list[tuple[Item, BaseException]] = []
    changed = threading.Condition()
    threads = []

    def work(item: Item, held: list[int]) -> None:
        try:
            item.run(held)
        except BaseException as err:  # noqa: BLE001 - reported below, after the other items
            with changed:
                failed.append((item, err))
        finally:
            with changed:
                free.extend(held)
                free.sort()  # low ids first: a tp-4 item on 0-3, not 0,5,6,7 (PCIe nodes group GPUs by id)
                changed.notify_all()

    with _interrupt_flag() as interrupted:
        try:
            with changed:
                while pending:
                    fits = next((it for it in pending if it.tp <= len(free)), None)
                    if fits is None:
                        changed.wait(0.1)  # woken by a finished item; the timeout lets Ctrl-C through
                        if interrupted.is_set():
                            raise KeyboardInterrupt
                        continue
                    pending.remove(fits)
                    held, free[:] = free[:fits.tp], free[fits.tp:]
                    thread = threading.Thread(target=work, args=(fits, held), name=f"device-pool {fits.name}")
                    thread.start()
                    threads.append(thread)
            for thread in threads:
                _join(thread, interrupted)
        except BaseException:
            if cancel:
                cancel()
            for thread in threads:
                thread.join()
            raise
    if failed:
        names = "; ".join(f"{item.name}: {err}" for item, err in failed)
        raise RuntimeError(f"{len(failed)} of {len(items)} items failed ({names})") from failed[0][1]
