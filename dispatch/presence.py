"""Driver presence and positions in Redis (DESIGN.md: no database write per ping)."""


def on_driver_assigned(driver_id: int, *, trip_id, rider_id: int) -> None:
    """The driver took a trip: no more offers; positions now stream to the rider."""


def on_driver_released(driver_id: int) -> None:
    """The driver's offer or trip ended: available again if still online."""
