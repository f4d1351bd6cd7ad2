"""The forecast arithmetic of preventive maintenance items, without a database."""

import unittest
from datetime import date, datetime

from protocols import maintenance_forecast as mf

TODAY = date(2026, 11, 27)


def item(combine="or", **interval):
    soon = {"hours": 25, "km": 500, "days": 14}
    return {"interval": interval, "soon": soon, "combine": combine}


def machine(hours=0.0, km=0.0, hours_per_day=None, km_per_day=None, read_on=TODAY):
    at = datetime.combine(read_on, datetime.min.time())
    return {
        "hours": hours,
        "km": km,
        "hours_at": at,
        "km_at": at,
        "hours_per_day": hours_per_day,
        "km_per_day": km_per_day,
    }


class TestInitialDue(unittest.TestCase):
    def test_next_multiple_of_the_interval(self):
        self.assertEqual(mf.initial_due(4180, 250), 4250)
        self.assertEqual(mf.initial_due(4250, 250), 4500)
        self.assertEqual(mf.initial_due(0, 250), 250)
        self.assertEqual(mf.initial_due(None, 250), 250)

    def test_first_service_offset(self):
        self.assertEqual(mf.initial_due(10, 500, first=50), 50)
        self.assertEqual(mf.initial_due(60, 500, first=50), 550)


class TestEvaluate(unittest.TestCase):
    def run_item(self, it, base_hours, hours, per_day=None, base_day=TODAY, km=0.0, km_day=None):
        baseline = {"hours": base_hours, "km": 0.0, "days": base_day}
        due = mf.next_due(it, baseline)
        return mf.evaluate(it, baseline, due, machine(hours, km, per_day, km_day), TODAY)

    def test_forecast_formula(self):
        # 200 h left at 8 h/day, last read 5 days ago: 160 h left after projection, 20 days.
        result = mf.evaluate(
            item(hours=250),
            {"hours": 0.0, "days": TODAY},
            {"hours": 250.0},
            machine(50, hours_per_day=8, read_on=date(2026, 11, 22)),
            TODAY,
        )
        self.assertEqual(result["forecast"], date(2026, 12, 17))
        self.assertEqual(result["status"], "ok")
        self.assertAlmostEqual(result["progress"], 0.2)

    def test_soon_and_overdue(self):
        self.assertEqual(self.run_item(item(hours=250), 0, 224)["status"], "ok")
        self.assertEqual(self.run_item(item(hours=250), 0, 225)["status"], "soon")
        self.assertEqual(self.run_item(item(hours=250), 0, 250)["status"], "overdue")
        self.assertEqual(self.run_item(item(hours=250), 0, 249.995)["status"], "overdue")

    def test_or_takes_whichever_comes_first(self):
        long_ago = date(2026, 8, 1)
        result = self.run_item(item(hours=250, days=90), 0, 10, per_day=1, base_day=long_ago)
        self.assertEqual(result["status"], "overdue")
        self.assertEqual(result["triggers"], {"hours": "ok", "days": "overdue"})
        self.assertEqual(result["forecast"], date(2026, 10, 30))

    def test_and_takes_whichever_comes_last(self):
        it = item("and", hours=250, days=90)
        result = self.run_item(it, 0, 260, per_day=8)
        self.assertEqual(result["status"], "ok")
        self.assertEqual(result["forecast"], date(2027, 2, 25))
        long_ago = date(2026, 8, 1)
        self.assertEqual(self.run_item(it, 0, 260, base_day=long_ago)["status"], "overdue")

    def test_and_without_use_has_no_forecast(self):
        result = self.run_item(item("and", hours=250, days=90), 0, 10, per_day=None)
        self.assertIsNone(result["forecast"])

    def test_forecast_moves_with_use(self):
        slow = self.run_item(item(hours=250), 0, 50, per_day=4)["forecast"]
        fast = self.run_item(item(hours=250), 0, 50, per_day=10)["forecast"]
        self.assertEqual((slow - TODAY).days, 50)
        self.assertEqual((fast - TODAY).days, 20)

    def test_km_trigger(self):
        result = self.run_item(item(km=10000), 0, 0, km=9600, km_day=100)
        self.assertEqual(result["status"], "soon")
        self.assertEqual(result["forecast"], date(2026, 12, 1))

    def test_huge_and_zero_use(self):
        self.assertIsNone(mf.forecast_meter(0, TODAY, 1e9, 1e-9, TODAY))
        self.assertIsNone(mf.forecast_meter(0, TODAY, 250, 0, TODAY))
        self.assertEqual(mf.forecast_meter(300, TODAY, 250, 0, TODAY), TODAY)

    def test_usage_per_day(self):
        start, end = datetime(2026, 11, 1), datetime(2026, 11, 11)
        self.assertEqual(mf.usage_per_day(100, start, 180, end), 8.0)
        self.assertIsNone(mf.usage_per_day(100, end, 180, end))
        self.assertIsNone(mf.usage_per_day(None, start, 180, end))


class TestPackages(unittest.TestCase):
    def test_larger_package_at_the_same_point_covers(self):
        self.assertTrue(mf.is_covered({"hours": 500.0}, {"hours": 500.0}))
        self.assertFalse(mf.is_covered({"hours": 250.0}, {"hours": 500.0}))
        self.assertTrue(mf.is_covered({"days": TODAY}, {"days": TODAY}))

    def test_a_package_within_the_due_soon_threshold_covers(self):
        self.assertTrue(mf.is_covered({"hours": 490.0}, {"hours": 500.0}, {"hours": 25}))
        self.assertFalse(mf.is_covered({"hours": 470.0}, {"hours": 500.0}, {"hours": 25}))

    def test_description(self):
        due = {"hours": 4250.0, "days": date(2027, 2, 1)}
        self.assertEqual(mf.due_description(due, "or"), "4,250 h or 2027-02-01")


if __name__ == "__main__":
    unittest.main()
