"""Background work that gives way to time-critical work on the CPU (no ``odoo`` import).

An Odyssee import of thousands of approvals keeps a core busy for minutes; on
the same machine telematics receipt must still answer within milliseconds. The
import therefore runs at a lower scheduling priority, as Odoo's own prefork cron
workers do (they run at nice 10). Linux gives each thread its own nice value; an
unprivileged process can lower a thread's priority but never raise it again, so
the work runs in a thread of its own that ends with it, and the calling thread
(an HTTP worker, a cron thread of the threaded server) keeps its priority.
"""

import os
import threading

# Attributes Odoo keeps on its threads: the database and user of log lines,
# the test flag, and the query counters of the request's performance logging.
ODOO_THREAD_ATTRIBUTES = ("dbname", "uid", "url", "testing", "query_count", "query_time", "perf_t0")


def thread_niceness(native_id=None):
    """The nice value of a thread (default: the current one)."""
    return os.getpriority(os.PRIO_PROCESS, native_id or threading.get_native_id())


def run_at_lower_priority(function, niceness):
    """``function()`` run at nice ``niceness`` (0 to 19), or lower if the caller already is.

    Returns its result or raises its exception, as a direct call would. When
    the current thread is already that nice (a prefork cron worker at nice 10),
    or where threads have no priority of their own, it is a direct call. The
    caller waits: whatever ``function`` uses (a database cursor, say) is only
    ever used by one thread at a time.
    """
    if not hasattr(os, "setpriority") or not hasattr(os, "PRIO_PROCESS"):
        return function()
    target = min(19, niceness)
    if target <= thread_niceness():
        return function()
    parent = threading.current_thread()
    outcome = {}

    def run():
        for name in ODOO_THREAD_ATTRIBUTES:
            if hasattr(parent, name):
                setattr(threading.current_thread(), name, getattr(parent, name))
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), target)
            outcome["result"] = function()
        except BaseException as exc:  # handed to the caller, which raises it
            outcome["error"] = exc
        finally:
            for name in ("query_count", "query_time"):
                if hasattr(threading.current_thread(), name):
                    setattr(parent, name, getattr(threading.current_thread(), name))

    worker = threading.Thread(target=run, name=f"{parent.name}-low-priority", daemon=True)
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
