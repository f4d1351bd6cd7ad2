"""Plain-Python tests of ``cpu_priority`` (no database)."""

import threading
import time
import unittest
import unittest.mock

import cpu_priority


class TestRunAtLowerPriority(unittest.TestCase):
    def test_the_work_runs_lower_in_a_thread_of_its_own_and_the_caller_keeps_its_priority(self):
        caller = cpu_priority.thread_niceness()
        seen = []

        def work():
            seen.append((threading.get_native_id(), cpu_priority.thread_niceness()))
            return "done"

        self.assertEqual(cpu_priority.run_at_lower_priority(work, caller + 5), "done")
        ((native_id, niceness),) = seen
        self.assertNotEqual(native_id, threading.get_native_id())
        self.assertEqual(niceness, caller + 5)
        self.assertEqual(cpu_priority.thread_niceness(), caller)

    def test_threads_the_work_starts_inherit_its_priority(self):
        caller = cpu_priority.thread_niceness()
        seen = []

        def work():
            helper = threading.Thread(target=lambda: seen.append(cpu_priority.thread_niceness()))
            helper.start()
            helper.join()

        cpu_priority.run_at_lower_priority(work, caller + 3)
        self.assertEqual(seen, [caller + 3])

    def test_priority_never_goes_past_19(self):
        seen = []
        cpu_priority.run_at_lower_priority(lambda: seen.append(cpu_priority.thread_niceness()), 50)
        self.assertEqual(seen, [19])

    def test_a_caller_already_as_nice_calls_directly(self):
        # A prefork cron worker runs at nice 10 already: nothing to lower.
        caller = cpu_priority.thread_niceness()
        seen = []
        for niceness in (0, caller):
            cpu_priority.run_at_lower_priority(
                lambda: seen.append(threading.get_native_id()), niceness
            )
        self.assertEqual(seen, [threading.get_native_id()] * 2)

    def test_the_works_exception_reaches_the_caller(self):
        class Refused(Exception):
            pass

        def work():
            raise Refused("no")

        with self.assertRaises(Refused):
            cpu_priority.run_at_lower_priority(work, cpu_priority.thread_niceness() + 5)

    def test_an_interrupted_caller_waits_for_the_work_then_raises(self):
        """A time limit's signal in the caller must not leave the work on a cursor
        that the caller's error handling closes."""
        release, finished = threading.Event(), []

        def work():
            release.wait(10)
            finished.append(True)

        caller = threading.current_thread()
        interrupts = [KeyboardInterrupt("time limit")]
        original_join = threading.Thread.join

        def interrupted_join(thread, timeout=None):
            if thread is not caller and interrupts:
                release.set()
                raise interrupts.pop()
            return original_join(thread, timeout)

        with (
            unittest.mock.patch.object(threading.Thread, "join", interrupted_join),
            self.assertRaises(KeyboardInterrupt),
        ):
            cpu_priority.run_at_lower_priority(work, cpu_priority.thread_niceness() + 1)
        self.assertEqual(finished, [True])

    def test_a_system_refusing_the_priority_runs_the_work_all_the_same(self):
        def refuse(*_args):
            raise PermissionError("not here")

        with (
            unittest.mock.patch.object(cpu_priority.os, "setpriority", refuse),
            self.assertLogs("cpu_priority", "WARNING"),
        ):
            result = cpu_priority.run_at_lower_priority(
                lambda: "done", cpu_priority.thread_niceness() + 1
            )
        self.assertEqual(result, "done")

    def test_no_priority_of_their_own_is_a_direct_call(self):
        def no_such_thread(*_args):
            raise ProcessLookupError("not a process")

        seen = []
        with unittest.mock.patch.object(cpu_priority.os, "getpriority", no_such_thread):
            cpu_priority.run_at_lower_priority(lambda: seen.append(threading.get_native_id()), 10)
        self.assertEqual(seen, [threading.get_native_id()])

    def test_odoo_thread_attributes_follow_the_work_and_its_query_count_comes_back(self):
        caller = threading.current_thread()
        caller.dbname, caller.query_count = "db", 3
        self.addCleanup(lambda: (delattr(caller, "dbname"), delattr(caller, "query_count")))
        seen = []

        def work():
            current = threading.current_thread()
            seen.append(current.dbname)
            current.query_count += 2

        cpu_priority.run_at_lower_priority(work, cpu_priority.thread_niceness() + 1)
        self.assertEqual(seen, ["db"])
        self.assertEqual(caller.query_count, 5)


class FakeTime:
    """A clock that only moves when the work sleeps or is said to work."""

    def __init__(self):
        self.now = 100.0
        self.slept = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds

    def work(self, seconds):
        self.now += seconds


class TestGiveWay(unittest.TestCase):
    def give_way(self, busy_answers, **options):
        """A GiveWay whose ``busy()`` answers from ``busy_answers`` (then False)."""
        self.time = FakeTime()
        self.answers = list(busy_answers)
        self.asked = 0

        def busy():
            self.asked += 1
            return self.answers.pop(0) if self.answers else False

        return cpu_priority.GiveWay(
            busy, clock=self.time.clock, sleep=self.time.sleep, step=0.05, **options
        )

    def test_the_work_sleeps_while_others_wait_and_goes_on_when_they_are_done(self):
        give_way = self.give_way([True, True, True, False])
        give_way()
        self.assertEqual(self.time.slept, [0.05, 0.05, 0.05])
        self.assertAlmostEqual(give_way.paused, 0.15)

    def test_a_pause_is_bounded_and_the_work_then_goes_on_for_a_while(self):
        give_way = self.give_way([True] * 1000, max_pause=1.0, min_work=0.5)
        give_way()
        self.assertAlmostEqual(give_way.paused, 1.0)
        asked = self.asked
        # Within min_work of the pause, and however busy the others are: no pause.
        for _step in range(4):
            self.time.work(0.1)
            give_way()
        self.assertEqual((self.asked, give_way.paused), (asked, 1.0))
        self.time.work(0.2)
        give_way()
        self.assertAlmostEqual(give_way.paused, 2.0)

    def test_others_are_asked_at_most_every_check_every(self):
        give_way = self.give_way([], check_every=0.1)
        for _call in range(10):
            give_way()
            self.time.work(0.02)
        self.assertEqual(self.asked, 2)
        self.assertEqual(self.time.slept, [])

    def test_a_thread_calling_during_anothers_pause_waits_for_it_and_asks_nothing(self):
        # Real threads and time: a sync's reading thread calls while its main thread pauses.
        pausing, askers, busy_until = threading.Event(), [], []

        def busy():
            askers.append(threading.current_thread().name)
            if not busy_until:  # busy for 0.3 s from the first question, however late
                busy_until.append(time.monotonic() + 0.3)
            pausing.set()
            return time.monotonic() < busy_until[0]

        give_way = cpu_priority.GiveWay(busy, max_pause=2.0, min_work=0.5, step=0.01)
        first = threading.Thread(target=give_way, name="main")
        first.start()
        pausing.wait(5)
        give_way()  # this thread: the reader, while "main" pauses
        returned_at = time.monotonic()
        first.join(5)
        self.assertGreaterEqual(returned_at, busy_until[0])
        self.assertEqual(set(askers), {"main"})
        self.assertGreater(give_way.paused, 0.2)


if __name__ == "__main__":
    unittest.main()
