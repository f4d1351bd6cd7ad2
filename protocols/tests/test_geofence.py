"""Geofences: inside and outside circles and polygons, hysteresis (no database)."""

import random
import unittest

from protocols import geofence

# A 200 m circle and a ~220 m x ~220 m square, 2 km apart, in Paris.
CIRCLE = geofence.Fence(1, "circle", (48.8700, 2.3500), 200.0, None)
SQUARE = geofence.Fence(
    2,
    "polygon",
    None,
    None,
    ((48.8800, 2.3700), (48.8820, 2.3700), (48.8820, 2.3730), (48.8800, 2.3730)),
)
METRE_LAT = 1 / 111_195  # degrees of latitude per metre


class TestGeometry(unittest.TestCase):
    def test_circle_distance_from_the_boundary(self):
        self.assertAlmostEqual(geofence.signed_distance_m(CIRCLE, 48.87, 2.35), -200, places=3)
        north = 48.87 + 250 * METRE_LAT
        self.assertAlmostEqual(geofence.signed_distance_m(CIRCLE, north, 2.35), 50, delta=0.1)

    def test_polygon_inside_outside_and_concave(self):
        self.assertLess(geofence.signed_distance_m(SQUARE, 48.8810, 2.3715), -100)
        outside = geofence.signed_distance_m(SQUARE, 48.8800 - 30 * METRE_LAT, 2.3715)
        self.assertAlmostEqual(outside, 30, delta=0.1)
        # An L shape: the notch is outside.
        ell = geofence.Fence(
            3,
            "polygon",
            None,
            None,
            ((0, 0), (0, 0.002), (0.001, 0.002), (0.001, 0.001), (0.002, 0.001), (0.002, 0)),
        )
        self.assertLess(geofence.signed_distance_m(ell, 0.0005, 0.0005), 0)
        self.assertGreater(geofence.signed_distance_m(ell, 0.0015, 0.0015), 0)


class TestHysteresis(unittest.TestCase):
    def test_jitter_at_the_fence_does_not_flap(self):
        fences = [CIRCLE, SQUARE]
        site = None
        sites = []
        # Drive north out of the circle, jittering +-20 m around its edge, then away.
        for metres in (0, 100, 185, 215, 190, 220, 195, 226, 500):
            site = geofence.next_site(site, fences, 48.87 + metres * METRE_LAT, 2.35, 25)
            sites.append(site)
        self.assertEqual(sites, [1, 1, 1, 1, 1, 1, 1, None, None])

    def test_a_position_repeated_leaves_the_machine_where_it_is(self):
        """next_site(next_site(s, p), p) == next_site(s, p): processing skips a
        position equal to the one before, so this must hold for any site and position."""
        overlapping = geofence.Fence(3, "circle", (48.8810, 2.3715), 150.0, None)
        fences = [CIRCLE, SQUARE, overlapping]
        randomly = random.Random(15)
        for _ in range(3000):
            lat = 48.87 + randomly.uniform(-0.005, 0.015)
            lon = 2.35 + randomly.uniform(-0.005, 0.03)
            for site in (None, 1, 2, 3):
                after = geofence.next_site(site, fences, lat, lon, 25)
                self.assertEqual(geofence.next_site(after, fences, lat, lon, 25), after)

    def test_arrival_needs_to_be_well_inside(self):
        edge = 48.87 + 190 * METRE_LAT  # 10 m inside
        self.assertIsNone(geofence.next_site(None, [CIRCLE], edge, 2.35, 25))
        inside = 48.87 + 170 * METRE_LAT
        self.assertEqual(geofence.next_site(None, [CIRCLE], inside, 2.35, 25), 1)

    def test_leaving_for_another_site_and_the_deepest_of_overlapping_sites(self):
        self.assertEqual(geofence.next_site(1, [CIRCLE, SQUARE], 48.8810, 2.3715, 25), 2)
        big = geofence.Fence(9, "circle", (48.87, 2.35), 5000.0, None)
        self.assertEqual(geofence.next_site(None, [big, CIRCLE], 48.87, 2.35, 25), 9)


class TestPolygonText(unittest.TestCase):
    def test_bad_polygons_name_the_field(self):
        for text in (
            "",
            "{",
            "[[1, 2], [3, 4]]",
            '[[1, 2], [3, 4], ["a", 5]]',
            "[[1, 2], [3, 4], [95, 5]]",
            "[[1, 2], [3, 4], [true, 5]]",
            "[[1, 2], [3, 4], [1e400, 5]]",
        ):
            with self.assertRaises(geofence.FenceError) as caught:
                geofence.parse_polygon(text)
            self.assertEqual(caught.exception.field, "geofence_polygon", text)

    def test_good_polygon(self):
        self.assertEqual(
            geofence.parse_polygon("[[1, 2], [3, 4.5], [5, 6]]"),
            ((1.0, 2.0), (3.0, 4.5), (5.0, 6.0)),
        )


def next_site_in_full(current_site_id, fences, lat, lon, hysteresis_m):
    """``next_site`` by its definition, every distance computed: the box test's reference."""
    for fence in fences:
        if fence.site_id == current_site_id:
            if geofence.signed_distance_m(fence, lat, lon) <= hysteresis_m:
                return current_site_id
            break
    depths = [(geofence.signed_distance_m(fence, lat, lon), fence.site_id) for fence in fences]
    inside = [(depth, site) for depth, site in depths if depth < -hysteresis_m]
    return min(inside)[1] if inside else None


class TestBoxTest(unittest.TestCase):
    """The box test only skips distances that could not change the answer."""

    def test_same_answer_as_every_distance_computed(self):
        generator = random.Random(20261128)
        for origin_lat, origin_lon in ((48.87, 2.35), (-33.9, 18.4), (69.6, 18.9), (0.0, 179.99)):
            fences = []
            for site_id in range(1, 13):
                lat = origin_lat + generator.uniform(-0.02, 0.02)
                lon = origin_lon + generator.uniform(-0.03, 0.03)
                if site_id % 2:
                    fences.append(
                        geofence.Fence(
                            site_id, "circle", (lat, lon), generator.uniform(30, 900), None
                        )
                    )
                else:
                    size = generator.uniform(0.0005, 0.01)
                    square = (
                        (lat, lon),
                        (lat + size, lon),
                        (lat + size, lon + size),
                        (lat, lon + size),
                    )
                    fences.append(geofence.Fence(site_id, "polygon", None, None, square))
            site = None
            for _step in range(3000):
                lat = origin_lat + generator.uniform(-0.04, 0.04)
                lon = origin_lon + generator.uniform(-0.05, 0.05)
                hysteresis = generator.choice((0, 5, 25, 250))
                current = generator.choice((site, None, generator.randint(1, 12)))
                expected = next_site_in_full(current, fences, lat, lon, hysteresis)
                site = geofence.next_site(current, fences, lat, lon, hysteresis)
                self.assertEqual(site, expected, (current, lat, lon, hysteresis))

    def test_positions_at_the_box_edge_are_measured(self):
        # 24 m east of the square's east side, hysteresis 25 m: still on the site.
        east = 2.3730 + 24 / (111_195 * 0.6574)
        self.assertEqual(geofence.next_site(2, [SQUARE], 48.8810, east, 25), 2)
        self.assertIsNone(geofence.next_site(2, [SQUARE], 48.8810, east + 2 / 73_100, 25))


if __name__ == "__main__":
    unittest.main()
