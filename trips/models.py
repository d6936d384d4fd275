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
    # Ratings received (PROTOCOL.md Part 2, "After the ride"), kept as a sum
    # and a count so the average costs no query; written with the rating.
    rating_count = models.PositiveIntegerField(default=0, editable=False)
    rating_total = models.PositiveIntegerField(default=0, editable=False)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        constraints = [
            # Usernames are e-mail-like: "Bob@x" and "bob@x" are one person.
            models.UniqueConstraint(Lower("username"), name="username_unique_ignoring_case"),
        ]

    @property
    def rating(self) -> dict | None:
        """`{"average", "count"}` of the ratings received, or None before any."""
        if not self.rating_count:
            return None
        return {
            "average": round(self.rating_total / self.rating_count, 2),
            "count": self.rating_count,
        }

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
    SCHEDULED = "SCHEDULED"
    REQUESTED = "REQUESTED"
    STARTED = "STARTED"
    ARRIVED = "ARRIVED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"


# Outside the class, so that its Meta's constraints can name them too.
# A rider has at most one trip in an ACTIVE status (a SCHEDULED one is not) ...
ACTIVE = (TripStatus.REQUESTED, TripStatus.STARTED, TripStatus.ARRIVED, TripStatus.IN_PROGRESS)
# ... and a driver at most one in an ASSIGNED status, which needs a driver.
ASSIGNED = (TripStatus.STARTED, TripStatus.ARRIVED, TripStatus.IN_PROGRESS)
# A trip in any other status may have no driver (null or kept for history).
MAY_LACK_DRIVER = (
    TripStatus.SCHEDULED,
    TripStatus.REQUESTED,
    TripStatus.CANCELED,
    TripStatus.EXPIRED,
)


class Trip(models.Model):
    Status = TripStatus

    class Reason(models.TextChoices):
        NO_DRIVERS = "no_drivers"
        STALE = "stale"
        # The assigned driver canceled: the trip is back in dispatch.
        DRIVER_CANCELED = "driver_canceled"

    ACTIVE = ACTIVE
    ASSIGNED = ASSIGNED
    # No move leaves these (the staff console keeps an ended trip a moment).
    FINAL = (Status.COMPLETED, Status.CANCELED, Status.EXPIRED)
    # The assigned driver's moves (`trip_move`): at the pick-up, picked up, dropped off.
    DRIVER_MOVES = (Status.ARRIVED, Status.IN_PROGRESS, Status.COMPLETED)
    # Where the assigned driver is on the trip: a cancel of theirs goes back to dispatch.
    BEFORE_PICK_UP = (Status.STARTED, Status.ARRIVED)

    # PROTOCOL.md's status tables (Part 1, and Part 2's "Statuses, extended"):
    # (from, to) -> who may make that move. The services add what a row here
    # cannot say: the driver's no-show cancel only NO_SHOW_WAIT_S after
    # arriving, the PIN when RIDE_PIN_REQUIRED.
    TRANSITIONS: dict[tuple[str, str], frozenset[str]] = {
        (Status.SCHEDULED, Status.REQUESTED): frozenset({Actor.SERVICE}),
        (Status.SCHEDULED, Status.CANCELED): frozenset({Actor.RIDER}),
        (Status.SCHEDULED, Status.EXPIRED): frozenset({Actor.SERVICE}),
        (Status.REQUESTED, Status.STARTED): frozenset({Actor.OFFERED_DRIVER}),
        (Status.REQUESTED, Status.CANCELED): frozenset({Actor.RIDER}),
        (Status.REQUESTED, Status.EXPIRED): frozenset({Actor.SERVICE}),
        (Status.STARTED, Status.ARRIVED): frozenset({Actor.ASSIGNED_DRIVER}),
        (Status.STARTED, Status.IN_PROGRESS): frozenset({Actor.ASSIGNED_DRIVER}),
        (Status.STARTED, Status.CANCELED): frozenset({Actor.RIDER}),
        (Status.STARTED, Status.REQUESTED): frozenset({Actor.ASSIGNED_DRIVER}),
        (Status.ARRIVED, Status.IN_PROGRESS): frozenset({Actor.ASSIGNED_DRIVER}),
        (Status.ARRIVED, Status.CANCELED): frozenset({Actor.RIDER, Actor.ASSIGNED_DRIVER}),
        (Status.ARRIVED, Status.REQUESTED): frozenset({Actor.ASSIGNED_DRIVER}),
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
    # PROTOCOL.md Part 2, "Statuses, extended". A scheduled ride's time; when
    # the current driver accepted (the rider's free-cancel window) and arrived
    # (the no-show wait); when the trip ended (share links live 30 min more);
    # until when dispatch searches (DISPATCH_SEARCH_TIMEOUT_S after the request,
    # the scheduled time, or a driver's cancel).
    scheduled_for = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    arrived_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    search_until = models.DateTimeField(null=True, blank=True)
    # The cancel's reason code (rider: changed_mind, driver_too_far, wrong_pickup,
    # other; driver: rider_no_show, vehicle_issue, unsafe, other) and its fee.
    cancel_reason_code = models.CharField(max_length=32, null=True, blank=True)  # noqa: DJ001
    cancellation_fee = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    # The ride PIN the rider shows the driver, and the wrong tries so far.
    pin = models.CharField(max_length=4, editable=False, default="")
    pin_attempts = models.PositiveSmallIntegerField(default=0, editable=False)
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
            models.Index(fields=["status", "scheduled_for"], name="trip_status_scheduled"),
            models.Index(fields=["status", "search_until"], name="trip_status_search_until"),
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
            models.CheckConstraint(
                condition=~Q(status=TripStatus.SCHEDULED) | Q(scheduled_for__isnull=False),
                name="scheduled_trip_has_time",
            ),
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


class TripEvent(models.Model):
    """One status change of a trip, written in the transaction that made it
    (PROTOCOL.md Part 2, "After the ride": `GET /api/trip/<id>/events/`)."""

    class By(models.TextChoices):
        RIDER = "rider"
        DRIVER = "driver"
        SERVICE = "service"

    # Who moved the trip, as the history tells it.
    BY_ACTOR = {  # noqa: RUF012 - a constant, not a field
        Actor.RIDER: By.RIDER,
        Actor.ASSIGNED_DRIVER: By.DRIVER,
        Actor.OFFERED_DRIVER: By.DRIVER,
        Actor.SERVICE: By.SERVICE,
    }

    trip = models.ForeignKey(Trip, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    from_status = models.CharField(max_length=16, null=True, blank=True)  # noqa: DJ001
    to_status = models.CharField(max_length=16)
    by = models.CharField(max_length=8, choices=By.choices)
    # Who, when a user moved it (the driver of a driver's cancel, say).
    user = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="trip_events"
    )
    reason = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["trip", "at"], name="trip_event_trip_at")]

    def __str__(self) -> str:
        return f"{self.trip_id}: {self.from_status} -> {self.to_status}"


class Rating(models.Model):
    """One side's rating of the other after a completed trip: the rider rates
    the driver (`side` rider), the driver rates the rider (`side` driver)."""

    class Side(models.TextChoices):
        RIDER = "rider"
        DRIVER = "driver"

    trip = models.ForeignKey(Trip, on_delete=models.CASCADE, related_name="ratings")
    side = models.CharField(max_length=8, choices=Side.choices)
    rater = models.ForeignKey(User, on_delete=models.CASCADE, related_name="ratings_given")
    ratee = models.ForeignKey(User, on_delete=models.CASCADE, related_name="ratings_received")
    stars = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True, default="")
    tags = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(fields=["trip", "side"], name="one_rating_per_side_per_trip"),
            models.CheckConstraint(
                condition=Q(stars__gte=1) & Q(stars__lte=5), name="rating_stars_1_to_5"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stars}* by the {self.side} of {self.trip_id}"


class ShareLink(models.Model):
    """A trip's public follow link: an unguessable token, one per trip."""

    trip = models.OneToOneField(Trip, on_delete=models.CASCADE, related_name="share_link")
    token = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Share link of {self.trip_id}"
