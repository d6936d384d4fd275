"""Plane geometry for a city-sized box: distances, steps, bounding boxes."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dispatch.matching import EARTH_RADIUS_KM, haversine_km


@dataclass(frozen=True)
class Point:
    lat: float
    lng: float


@dataclass(frozen=True)
class BBox:
    """south, west, north, east in WGS84 degrees."""

    south: float
    west: float
    north: float
    east: float

    def __post_init__(self) -> None:
        if not (-85.05 <= self.south < self.north <= 85.05):
            raise ValueError("bbox needs -85.05 <= south < north <= 85.05")
        if not (-180 <= self.west < self.east <= 180):
            raise ValueError("bbox needs -180 <= west < east <= 180")

    @classmethod
    def parse(cls, text: str) -> BBox:
        """`south,west,north,east`, e.g. `38.85,-77.10,38.95,-76.98`."""
        parts = [part.strip() for part in text.split(",")]
        if len(parts) != 4:
            raise ValueError("bbox is four numbers: south,west,north,east")
        try:
            south, west, north, east = (float(part) for part in parts)
        except ValueError:
            raise ValueError("bbox is four numbers: south,west,north,east") from None
        return cls(south, west, north, east)

    def point_at(self, u: float, v: float) -> Point:
        """The point at fractions (u of the height, v of the width) of the box."""
        return Point(
            round(self.south + u * (self.north - self.south), 6),
            round(self.west + v * (self.east - self.west), 6),
        )

    def clamp(self, point: Point) -> Point:
        return Point(
            min(max(point.lat, self.south), self.north), min(max(point.lng, self.west), self.east)
        )

    def __str__(self) -> str:
        return f"{self.south},{self.west},{self.north},{self.east}"


# Washington, DC: about 11 km by 10 km.
DEFAULT_BBOX = BBox(38.85, -77.10, 38.95, -76.98)


def distance_km(a: Point, b: Point) -> float:
    """Great-circle distance, as the server measures it (`trip.offer`'s
    `distance_km`), so the KPIs and the server's figures agree."""
    return haversine_km(a.lat, a.lng, b.lat, b.lng)


def step_towards(start: Point, goal: Point, km: float) -> tuple[Point, bool]:
    """Move up to `km` along the straight line to `goal`; True once there."""
    remaining = distance_km(start, goal)
    if remaining <= km or remaining == 0:
        return goal, True
    f = km / remaining
    return (
        Point(
            round(start.lat + (goal.lat - start.lat) * f, 6),
            round(start.lng + (goal.lng - start.lng) * f, 6),
        ),
        False,
    )


def heading_deg(start: Point, goal: Point) -> float:
    """Compass bearing from start to goal, in [0, 360)."""
    lat1, lat2 = math.radians(start.lat), math.radians(goal.lat)
    dlng = math.radians(goal.lng - start.lng)
    x = math.sin(dlng) * math.cos(lat2)
    y = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(dlng)
    return round(math.degrees(math.atan2(x, y)) % 360.0, 1)


def offset(point: Point, north_km: float, east_km: float) -> Point:
    """The point `north_km` north and `east_km` east of `point` (small offsets)."""
    dlat = math.degrees(north_km / EARTH_RADIUS_KM)
    dlng = math.degrees(east_km / (EARTH_RADIUS_KM * math.cos(math.radians(point.lat))))
    return Point(round(point.lat + dlat, 6), round(point.lng + dlng, 6))
