"""The daily utilisation definitions on hand-computed series (no database)."""

import unittest
from datetime import date, datetime, timedelta
from decimal import Decimal

from protocols import usage_rollup

# Monday to Friday 08:00-12:00 and 13:00-17:00, like Odoo's standard calendar.
WINDOWS = usage_rollup.working_windows(
    [
        (str(day), hour_from, hour_to)
        for day in range(5)
        for hour_from, hour_to in ((8, 12), (13, 17))
    ]
)


def reading(at, **values):
    return {"at": at, "suspect": values.pop("suspect", False), **values}


class TestWorkingWindows(unittest.TestCase):
    def test_a_day_spans_its_first_start_to_its_last_end(self):
        self.assertEqual(WINDOWS[0], (8 * 3600, 17 * 3600))
        self.assertNotIn(5, WINDOWS)
        self.assertEqual(usage_rollup.working_windows([("2", 7.5, 16.25)]), {2: (27000, 58500)})

    def test_classify_local_times(self):
        monday = datetime(2026, 11, 9)
        self.assertEqual(usage_rollup.classify(monday.replace(hour=8), WINDOWS), "working")
        self.assertEqual(usage_rollup.classify(monday.replace(hour=17), WINDOWS), "out_of_hours")
        self.assertEqual(
            usage_rollup.classify(monday.replace(hour=7, minute=59), WINDOWS), "out_of_hours"
        )
        self.assertEqual(usage_rollup.classify(datetime(2026, 11, 8, 10), WINDOWS), "weekend")


class TestDailyUsage(unittest.TestCase):
    def days(self, readings, tz="UTC", seed=None, capacity=None):
        aggregates = usage_rollup.aggregate_days(readings, tz, WINDOWS, seed)
        return usage_rollup.finish_days(aggregates, seed, capacity)

    def test_rises_telescope_across_gaps_and_order(self):
        monday = datetime(2026, 11, 9, 9)
        series = [
            reading(monday, engine_hours=100, idle_hours=10, odometer_km=50),
            reading(monday + timedelta(hours=2), engine_hours=101.5, idle_hours=10.5),
            # silent until Wednesday: the whole rise lands on Wednesday
            reading(monday + timedelta(days=2), engine_hours=104, odometer_km=62.5),
        ]
        days = self.days(list(reversed(series)))
        self.assertEqual([day["day"] for day in days], [date(2026, 11, 9), date(2026, 11, 11)])
        self.assertEqual(days[0]["engine_hours"], Decimal("1.5"))
        self.assertEqual(days[0]["idle_hours"], Decimal("0.5"))
        self.assertEqual(days[0]["distance_km"], 0)
        self.assertEqual(days[1]["engine_hours"], Decimal("2.5"))
        self.assertEqual(days[1]["idle_hours"], 0)  # no idle reading that day
        self.assertEqual(days[1]["distance_km"], Decimal("12.5"))
        self.assertEqual(days[1]["end_idle_hours"], Decimal("10.5"))  # carried
        self.assertEqual(days[0]["idle_share"], 33.3)

    def test_suspect_readings_count_nowhere(self):
        at = datetime(2026, 11, 9, 9)
        days = self.days(
            [
                reading(at, engine_hours=100),
                reading(at + timedelta(hours=1), engine_hours=600, suspect=True),
                reading(at + timedelta(hours=2), engine_hours=101),
            ]
        )
        self.assertEqual(days[0]["engine_hours"], 1)
        self.assertEqual(days[0]["reading_count"], 2)

    def test_seed_continues_from_the_day_before(self):
        at = datetime(2026, 11, 9, 9)
        seed = {"engine_hours": Decimal(98), "fuel_level_pct": Decimal(60)}
        days = self.days(
            [reading(at, engine_hours=100, fuel_level_pct=55)], seed=seed, capacity=300
        )
        self.assertEqual(days[0]["engine_hours"], 2)
        self.assertEqual(days[0]["fuel_used_l"], 15)
        self.assertEqual(days[0]["fuel_source"], "level")
        self.assertEqual(days[0]["first_activity_at"], at)

    def test_fuel_counter_wins_and_refuels_are_not_use(self):
        at = datetime(2026, 11, 9, 9)
        levels = [80, 70, 95, 90]
        days = self.days(
            [reading(at + timedelta(hours=i), fuel_level_pct=v) for i, v in enumerate(levels)],
            capacity=200,
        )
        self.assertEqual(days[0]["fuel_used_l"], 30)  # (10 + 5) % of 200 L
        days = self.days(
            [
                reading(at, fuel_used_l=1000, fuel_level_pct=80),
                reading(at + timedelta(hours=1), fuel_used_l=1012.5, fuel_level_pct=70),
            ],
            capacity=200,
        )
        self.assertEqual(
            (days[0]["fuel_used_l"], days[0]["fuel_source"]), (Decimal("12.5"), "counter")
        )

    def test_local_days_and_calendar_in_a_time_zone(self):
        # 23:30 UTC on Friday is Saturday 00:30 in Paris: weekend hours of Saturday.
        friday = datetime(2026, 11, 13, 22, 30)
        days = self.days(
            [
                reading(friday, engine_hours=10),
                reading(friday + timedelta(hours=1), engine_hours=11),
                reading(friday + timedelta(hours=2), engine_hours=12),
            ],
            tz="Europe/Paris",
        )
        self.assertEqual([day["day"] for day in days], [date(2026, 11, 13), date(2026, 11, 14)])
        self.assertEqual(days[1]["engine_hours"], 2)
        self.assertEqual(days[1]["weekend_hours"], 2)
        self.assertEqual(days[0]["out_of_hours_hours"], 0)

    def test_day_starts_across_daylight_saving(self):
        start = usage_rollup.local_day_start(date(2026, 10, 25), "Europe/Paris")
        end = usage_rollup.local_day_start(date(2026, 10, 26), "Europe/Paris")
        self.assertEqual(end - start, timedelta(hours=25))
        self.assertEqual(usage_rollup.next_local_day_start(start, "Europe/Paris"), start)
        self.assertEqual(
            usage_rollup.next_local_day_start(start + timedelta(seconds=1), "Europe/Paris"), end
        )


class TestTwoWeekCalendars(unittest.TestCase):
    def test_each_week_parity_has_its_windows(self):
        attendances = [
            (str(day), 8, 17, week)
            for week in ("0", "1")
            for day in range(5)
            if not (week == "1" and day == 4)  # odd weeks: no Friday
        ]
        windows = usage_rollup.calendar_windows(attendances, two_weeks=True)
        self.assertIn(4, windows[0])
        self.assertNotIn(4, windows[1])
        # Odoo's parity: whole weeks since 1 January of year 1 (a Monday).
        self.assertEqual(usage_rollup.week_type(date(1, 1, 1)), 0)
        self.assertEqual(usage_rollup.week_type(date(1, 1, 8)), 1)
        odd, even = datetime(2026, 11, 20, 10), datetime(2026, 11, 13, 10)
        self.assertEqual(usage_rollup.classify(odd, windows), "weekend")
        self.assertEqual(usage_rollup.classify(even, windows), "working")
        # A one-week calendar ignores week types.
        one = usage_rollup.calendar_windows([("4", 8, 17, False)])
        self.assertEqual(usage_rollup.classify(odd, one), "working")


class TestSiteHours(unittest.TestCase):
    def test_site_at_the_later_reading_from_the_visits(self):
        t = datetime(2026, 11, 10, 8)
        visits = [
            (1, 10, t, t + timedelta(hours=2)),
            (2, 20, t + timedelta(hours=3), None),
            (3, 30, t + timedelta(hours=3), None),  # began together: the later record wins
        ]
        self.assertIsNone(usage_rollup.site_at(visits, t - timedelta(seconds=1)))
        self.assertEqual(usage_rollup.site_at(visits, t), 10)
        self.assertIsNone(usage_rollup.site_at(visits, t + timedelta(hours=2)))
        self.assertEqual(usage_rollup.site_at(visits, t + timedelta(hours=5)), 30)
        readings = [
            reading(t + timedelta(hours=hours), engine_hours=100 + hours, idle_hours=hours / 4)
            for hours in range(6)
        ]
        readings.append(reading(t + timedelta(hours=4, minutes=30), engine_hours=900, suspect=True))
        hours = usage_rollup.site_days(readings, "UTC", visits)
        day = t.date()
        self.assertEqual(
            hours,
            {
                (day, 10): (Decimal(1), Decimal("0.25")),
                (day, None): (Decimal(1), Decimal("0.25")),
                (day, 30): (Decimal(3), Decimal("0.75")),
            },
        )


if __name__ == "__main__":
    unittest.main()
