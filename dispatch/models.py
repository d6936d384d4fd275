"""Offers: a trip proposed to one driver until a deadline."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Offer(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING"
        ACCEPTED = "ACCEPTED"
        DECLINED = "DECLINED"
        EXPIRED = "EXPIRED"
        REVOKED = "REVOKED"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    trip = models.ForeignKey("trips.Trip", on_delete=models.CASCADE, related_name="offers")
    driver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="offers"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    expires_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    # Straight-line distance from the driver to the pick-up when offered.
    distance_km = models.FloatField(null=True, blank=True)
    # The estimated time for the driver to reach the pick-up (`trip.offer`).
    pickup_eta_s = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["created"]
        indexes = [models.Index(fields=["status", "expires_at"], name="offer_status_expires")]
        constraints = [
            # A trip is offered to one driver at a time, and a driver holds at
            # most one live offer: the reservation that keeps two trips from
            # offering the same driver at once.
            models.UniqueConstraint(
                fields=["trip"], condition=Q(status="PENDING"), name="one_live_offer_per_trip"
            ),
            models.UniqueConstraint(
                fields=["driver"], condition=Q(status="PENDING"), name="one_live_offer_per_driver"
            ),
            # A driver is offered a given trip once.
            models.UniqueConstraint(fields=["trip", "driver"], name="one_offer_per_trip_driver"),
        ]

    def __str__(self) -> str:
        return f"Offer {self.id} ({self.status})"

    @classmethod
    def live(cls) -> models.QuerySet["Offer"]:
        return cls.objects.filter(status=cls.Status.PENDING, expires_at__gt=timezone.now())
