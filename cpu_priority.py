"""Background work that gives way to time-critical work on the CPU (no ``odoo`` import).

An Odyssee import of thousands of approvals keeps a core busy for minutes; on
the same machine telematics receipt must still answer within milliseconds. The
import therefore runs at a lower scheduling priority, as Odoo's own prefork cron
workers do (they run at nice 10). Linux gives each thread its own nice value; an
unprivileged process can lower a thread's priority but never raise it again, so
the work runs in a thread of its own that ends with it, and the calling thread
(an HTTP worker, a cron thread of the threaded server) keeps its priority.
"""

import logging
import os
import threading
import time

_logger = logging.getLogger(__name__)

# Attributes Odoo keeps on its threads: the database and user of log lines,
# the test flag, and the query counters of the request's performance logging.
ODOO_THREAD_ATTRIBUTES = ("dbname", "uid", "url", "testing", "query_count", "query_time", "perf_t0")


def thread_niceness(native_id=None):
    """The nice value of a thread (default: the current one)."""
    return os.getpriority(os.PRIO_PROCESS, native_id or threading.get_native_id())


def _current_niceness():
    """The current thread's nice value, or None where threads have none of their own."""
    if not hasattr(os, "setpriority") or not hasattr(os, "PRIO_PROCESS"):
        return None
    try:
        return thread_niceness()
    except OSError:  # a thread id the system does not take as a process (macOS)
        return None


def lower_current_thread(niceness):
    """Lower the current thread to nice ``niceness`` (0 to 19); never raises it.

    Threads it starts afterwards inherit it. Where the system refuses (a
    sandbox), the thread goes on at its priority, and the refusal is logged.
    """
    current = _current_niceness()
    target = max(0, min(19, niceness))
    if current is None or target <= current:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), target)
    except OSError as exc:
        _logger.warning("could not lower this thread's priority: %s", exc)


def run_at_lower_priority(function, niceness):
    """``function()`` run at nice ``niceness`` (0 to 19), or lower if the caller already is.

    Returns its result or raises its exception, as a direct call would. When
    the current thread is already that nice (a prefork cron worker at nice 10),
    or where threads have no priority of their own, it is a direct call; where
    the system refuses the change, the work runs at the caller's priority. The
    caller waits for the work to end, even when a signal interrupts its wait
    (a time limit of Odoo's): whatever ``function`` uses (a database cursor, say)
    is only ever used by one thread at a time.
    """
    current = _current_niceness()
    target = min(19, niceness)
    if current is None or target <= current:
        return function()
    parent = threading.current_thread()
    outcome = {}

    def run():
        for name in ODOO_THREAD_ATTRIBUTES:
            if hasattr(parent, name):
                setattr(threading.current_thread(), name, getattr(parent, name))
        try:
            lower_current_thread(target)  # refused (a sandbox): runs as the caller would
            outcome["result"] = function()
        except BaseException as exc:  # handed to the caller, which raises it
            outcome["error"] = exc
        finally:
            for name in ("query_count", "query_time"):
                if hasattr(threading.current_thread(), name):
                    setattr(parent, name, getattr(threading.current_thread(), name))

    worker = threading.Thread(target=run, name=f"{parent.name}-low-priority", daemon=True)
    worker.start()
    interrupted = None
    while worker.is_alive():
        try:
            worker.join()
        except BaseException as exc:  # the caller's cursor must outlive the work on it
            interrupted = interrupted or exc
    if interrupted is not None:
        raise interrupted
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


class GiveWay:
    """Background work that pauses while time-critical work waits, within bounds.

    A lower priority (``run_at_lower_priority``) only orders the CPU among
    threads: the database backend of the background work still runs at full
    priority. Called between steps of the work (an Odyssee sync calls it before
    each remote call), an instance asks ``busy()`` (are telematics events
    waiting for processing, say) at most every ``check_every`` seconds and
    sleeps while it answers yes, for at most ``max_pause`` seconds at a time;
    after a pause the work goes on for at least ``min_work`` seconds before it
    pauses again, so that under a load that never ends it still gets
    ``min_work / (min_work + max_pause)`` of its time.

    Several threads of the work may call it (a sync reads lines in a thread
    while it writes): one asks and pauses, the others wait for it.
    """

    def __init__(
        self,
        busy,
        max_pause=2.0,
        min_work=0.5,
        check_every=0.1,
        step=0.05,
        clock=time.monotonic,
        sleep=time.sleep,
    ):
        self.busy = busy
        self.max_pause = max_pause
        self.min_work = min_work
        self.check_every = check_every
        self.step = step
        self.clock = clock
        self.sleep = sleep
        self.checked_at = float("-inf")
        self.resumed_at = float("-inf")
        self.paused = 0.0  # seconds slept, in all
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            self._give_way()

    def _give_way(self):
        now = self.clock()
        if now - self.checked_at < self.check_every or now - self.resumed_at < self.min_work:
            return
        self.checked_at = now
        if not self.busy():
            return
        started = now
        while (left := self.max_pause - (self.clock() - started)) > 0:
            self.sleep(min(self.step, left))
            if not self.busy():
                break
        self.resumed_at = self.checked_at = self.clock()
        self.paused += self.resumed_at - started
