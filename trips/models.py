"""Users and trips. The trip status table lives here, on the model it rules."""

import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class User(AbstractUser):
    class Group(models.TextChoices):
        RIDER = "rider"
        DRIVER = "driver"

    group = models.CharField(max_length=16, choices=Group.choices, default=Group.RIDER)
    photo = models.ImageField(upload_to="photos/", null=True, blank=True)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        constraints = [
            # Usernames are e-mail-like: "Bob@x" and "bob@x" are one person.
            models.UniqueConstraint(Lower("username"), name="username_unique_ignoring_case"),
        ]

    @property
    def is_rider(self) -> bool:
        return self.group == self.Group.RIDER

    @property
    def is_driver(self) -> bool:
        return self.group == self.Group.DRIVER


class Actor(models.TextChoices):
    """Who moves a trip, relative to that trip."""

    RIDER = "rider"
    ASSIGNED_DRIVER = "assigned_driver"
    OFFERED_DRIVER = "offered_driver"
    SERVICE = "service"


class TripStatus(models.TextChoices):
    REQUESTED = "REQUESTED"
    STARTED = "STARTED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"


# Outside the class, so that its Meta's constraints can name them too.
# A rider has at most one trip in an ACTIVE status ...
ACTIVE = (TripStatus.REQUESTED, TripStatus.STARTED, TripStatus.IN_PROGRESS)
# ... and a driver at most one in an ASSIGNED status, which needs a driver.
ASSIGNED = (TripStatus.STARTED, TripStatus.IN_PROGRESS)
# A trip in any other status may have no driver (null or kept for history).
MAY_LACK_DRIVER = (TripStatus.REQUESTED, TripStatus.CANCELED, TripStatus.EXPIRED)


class Trip(models.Model):
    Status = TripStatus

    class Reason(models.TextChoices):
        NO_DRIVERS = "no_drivers"
        STALE = "stale"

    ACTIVE = ACTIVE
    ASSIGNED = ASSIGNED
    # No move leaves these (the staff console keeps an ended trip a moment).
    FINAL = (Status.COMPLETED, Status.CANCELED, Status.EXPIRED)
    # The assigned driver's moves (`trip_move`): picked up, dropped off.
    DRIVER_MOVES = (Status.IN_PROGRESS, Status.COMPLETED)

    # PROTOCOL.md's status table: (from, to) -> who may make that move.
    TRANSITIONS: dict[tuple[str, str], frozenset[str]] = {
        (Status.REQUESTED, Status.STARTED): frozenset({Actor.OFFERED_DRIVER}),
        (Status.REQUESTED, Status.CANCELED): frozenset({Actor.RIDER}),
        (Status.REQUESTED, Status.EXPIRED): frozenset({Actor.SERVICE}),
        (Status.STARTED, Status.IN_PROGRESS): frozenset({Actor.ASSIGNED_DRIVER}),
        (Status.STARTED, Status.CANCELED): frozenset({Actor.RIDER, Actor.ASSIGNED_DRIVER}),
        (Status.IN_PROGRESS, Status.COMPLETED): frozenset({Actor.ASSIGNED_DRIVER}),
    }

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.REQUESTED)
    # Null, not "", when there is no reason: the protocol's JSON says null.
    status_reason = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    version = models.PositiveIntegerField(default=1)
    pick_up_address = models.CharField(max_length=255)
    pick_up_lat = models.FloatField()
    pick_up_lng = models.FloatField()
    drop_off_address = models.CharField(max_length=255)
    drop_off_lat = models.FloatField(null=True, blank=True)
    drop_off_lng = models.FloatField(null=True, blank=True)
    rider = models.ForeignKey(User, on_delete=models.PROTECT, related_name="trips_as_rider")
    driver = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="trips_as_driver"
    )
    # PROTOCOL.md Part 2, "Products, vehicles and prices": the product asked
    # for, the rate card version it was priced with (kept after an admin edits
    # the product's rates), the quote it came from, and its fare
    # (`pricing.fares.Fare.as_json`: a quote's, an estimate, or final).
    product = models.CharField(max_length=32, default="standard")
    rate_card = models.ForeignKey(
        "pricing.RateCard", on_delete=models.PROTECT, null=True, blank=True, related_name="trips"
    )
    quote = models.ForeignKey(
        "pricing.Quote", on_delete=models.SET_NULL, null=True, blank=True, related_name="trips"
    )
    fare = models.JSONField(null=True, blank=True)
    # The route from pick-up to drop-off as estimated at the request, and the
    # driver's estimated time to the pick-up (from the quote, then the offer).
    distance_m = models.PositiveIntegerField(null=True, blank=True)
    duration_s = models.PositiveIntegerField(null=True, blank=True)
    pickup_eta_s = models.PositiveIntegerField(null=True, blank=True)
    # When the rider was picked up: the final fare's ride time starts here.
    picked_up_at = models.DateTimeField(null=True, blank=True)
    # A client's retry key: the same rider and key return the first trip.
    idempotency_key = models.CharField(  # noqa: DJ001 - null keeps keyless trips out of the index
        max_length=255, null=True, blank=True, editable=False
    )

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["rider", "-created"], name="trip_rider_created"),
            models.Index(fields=["driver", "-created"], name="trip_driver_created"),
            models.Index(fields=["status", "created"], name="trip_status_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["rider"],
                condition=Q(status__in=list(ACTIVE)),
                name="one_active_trip_per_rider",
            ),
            models.UniqueConstraint(
                fields=["driver"],
                condition=Q(status__in=list(ASSIGNED)),
                name="one_active_trip_per_driver",
            ),
            models.UniqueConstraint(
                fields=["rider", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="one_trip_per_idempotency_key",
            ),
            models.CheckConstraint(
                condition=Q(driver__isnull=False) | Q(status__in=list(MAY_LACK_DRIVER)),
                name="assigned_trip_has_driver",
            ),
            models.CheckConstraint(condition=Q(version__gte=1), name="trip_version_positive"),
        ]

    def __str__(self) -> str:
        return f"Trip {self.id} ({self.status})"

    @classmethod
    def can_transition(cls, from_status: str, to_status: str, actor: str) -> bool:
        return actor in cls.TRANSITIONS.get((from_status, to_status), frozenset())

    # What `driver_target` reads.
    TARGET_FIELDS = ("pick_up_lat", "pick_up_lng", "drop_off_lat", "drop_off_lng")

    def driver_target(self) -> tuple[float, float] | None:
        """Where the assigned driver heads, as (lat, lng): the pick-up until
        the rider is in, then the drop-off (None when the trip has none)."""
        if self.status == TripStatus.IN_PROGRESS:
            lat, lng = self.drop_off_lat, self.drop_off_lng
        else:
            lat, lng = self.pick_up_lat, self.pick_up_lng
        return None if lat is None or lng is None else (lat, lng)

    def actor_for(self, user: User) -> str | None:
        """The role `user` plays in this trip, as far as the trip row alone tells."""
        if user.pk == self.rider_id:
            return Actor.RIDER
        if self.driver_id is not None and user.pk == self.driver_id:
            return Actor.ASSIGNED_DRIVER
        return None
