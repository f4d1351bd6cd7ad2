"""Job-site geofences: is a position inside a circle or a polygon, with hysteresis.

No database: the addon loads its sites' fences and feeds positions in time
order; ``next_site`` decides where a machine is after each one.

Distances use a local equirectangular projection around the point, which is
accurate to well under a metre over the few kilometres a job site spans.
"""

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


def next_site(current_site_id, fences, lat, lon, hysteresis_m):
    """The site a machine is on after a position, given the site it was on.

    A machine stays on its site until it is more than ``hysteresis_m`` outside
    the fence, and arrives on a site only once it is more than ``hysteresis_m``
    inside: GPS jitter at a fence does not flap. Of overlapping sites, the one
    the machine is deepest inside wins.
    """
    for fence in fences:
        if fence.site_id == current_site_id:
            if signed_distance_m(fence, lat, lon) <= hysteresis_m:
                return current_site_id
            break
    best, best_depth = None, None
    for fence in fences:
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
