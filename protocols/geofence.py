"""Job-site geofences: is a position inside a circle or a polygon, with hysteresis.

No database: the addon loads its sites' fences and feeds positions in time
order; ``next_site`` decides where a machine is after each one.

Distances use a local equirectangular projection around the point, which is
accurate to well under a metre over the few kilometres a job site spans.
"""

import functools
import json
import math
from collections import namedtuple

EARTH_RADIUS_M = 6_371_008.8

# kind is "circle" (center, radius_m) or "polygon" (vertices as (lat, lon)).
Fence = namedtuple("Fence", "site_id kind center radius_m vertices")


class FenceError(ValueError):
    """A fence that cannot be used, with the field at fault."""

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field = field


def _project(lat, lon, origin_lat):
    """(x, y) in metres on a plane tangent at latitude ``origin_lat``."""
    scale = math.cos(math.radians(origin_lat))
    return (
        math.radians(lon) * EARTH_RADIUS_M * scale,
        math.radians(lat) * EARTH_RADIUS_M,
    )


def distance_m(lat1, lon1, lat2, lon2):
    """Great-circle distance in metres (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, a)))


def _segment_distance(px, py, ax, ay, bx, by):
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if not length2 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / length2))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def signed_distance_m(fence, lat, lon):
    """Metres from the fence's boundary: negative inside, positive outside."""
    if fence.kind == "circle":
        return distance_m(lat, lon, *fence.center) - fence.radius_m
    px, py = _project(lat, lon, lat)
    points = [_project(vlat, vlon, lat) for vlat, vlon in fence.vertices]
    inside = False
    nearest = math.inf
    for index, (ax, ay) in enumerate(points):
        bx, by = points[index - 1]
        if (ay > py) != (by > py) and px < (bx - ax) * (py - ay) / (by - ay) + ax:
            inside = not inside
        nearest = min(nearest, _segment_distance(px, py, ax, ay, bx, by))
    return -nearest if inside else nearest


# Metres per degree of latitude are at least this anywhere on Earth (110,574 at the
# equator), so a margin converted with it is never too small.
_MIN_METRES_PER_DEGREE = 110_000


@functools.lru_cache(maxsize=4096)
def _bounds(fence):
    """(south, north, west, east) in degrees of the fence, or None near the antimeridian."""
    if fence.kind == "circle":
        lat, lon = fence.center
        reach = fence.radius_m
        lats, lons = (lat,), (lon,)
    else:
        reach = 0.0
        lats = tuple(vertex[0] for vertex in fence.vertices)
        lons = tuple(vertex[1] for vertex in fence.vertices)
    if max(lons) - min(lons) > 180:
        return None  # a fence across the antimeridian: no box, every test made in full
    dlat = reach / _MIN_METRES_PER_DEGREE
    return (min(lats) - dlat, max(lats) + dlat, min(lons), max(lons), reach)


def _may_be_within(fence, lat, lon, margin_m):
    """False only when the position is surely more than ``margin_m`` outside the fence.

    A box test of a few comparisons, so that a position far from most sites (the
    usual case: one machine, dozens of sites) costs no distance computation.
    """
    bounds = _bounds(fence)
    if bounds is None:
        return True
    south, north, west, east, reach = bounds
    dlat = margin_m / _MIN_METRES_PER_DEGREE
    if not south - dlat <= lat <= north + dlat:
        return False
    # A degree of longitude shrinks with the cosine of the latitude: take the
    # widest latitude the box reaches, where it is smallest.
    widest = min(89.0, max(abs(south - dlat), abs(north + dlat)))
    dlon = (margin_m + reach) / (_MIN_METRES_PER_DEGREE * math.cos(math.radians(widest)))
    if west - dlon < -180 or east + dlon > 180:
        return True
    return west - dlon <= lon <= east + dlon


def next_site(current_site_id, fences, lat, lon, hysteresis_m):
    """The site a machine is on after a position, given the site it was on.

    A machine stays on its site until it is more than ``hysteresis_m`` outside
    the fence, and arrives on a site only once it is more than ``hysteresis_m``
    inside: GPS jitter at a fence does not flap. Of overlapping sites, the one
    the machine is deepest inside wins.
    """
    for fence in fences:
        if fence.site_id == current_site_id:
            if _may_be_within(fence, lat, lon, hysteresis_m) and (
                signed_distance_m(fence, lat, lon) <= hysteresis_m
            ):
                return current_site_id
            break
    best, best_depth = None, None
    for fence in fences:
        if not _may_be_within(fence, lat, lon, 0):
            continue  # outside the fence's box: not inside it, let alone well inside
        depth = signed_distance_m(fence, lat, lon)
        if depth < -hysteresis_m and (best_depth is None or depth < best_depth):
            best, best_depth = fence.site_id, depth
    return best


def parse_polygon(text):
    """Vertices from the JSON text ``[[lat, lon], ...]``; raises FenceError naming the field."""
    try:
        value = json.loads(text or "")
    except ValueError as error:
        raise FenceError("geofence_polygon", f"not JSON ({error.msg})") from None
    if not isinstance(value, list) or len(value) < 3:
        raise FenceError("geofence_polygon", "a list of at least three [lat, lon] pairs")
    vertices = []
    for index, pair in enumerate(value):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in pair)
        ):
            raise FenceError("geofence_polygon", f"vertex {index} is not a [lat, lon] pair")
        lat, lon = float(pair[0]), float(pair[1])
        check_position("geofence_polygon", lat, lon)
        vertices.append((lat, lon))
    return tuple(vertices)


def check_position(field, lat, lon):
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise FenceError(field, f"({lat}, {lon}) is not a latitude and longitude")
