"""After the ride over REST (PROTOCOL.md Part 2, "After the ride"): ratings,
share links and their public view, and a trip's history.

Codes beyond the protocol's: 409 `not_rateable` (a trip not COMPLETED, or
rated after RATING_WINDOW_S), 409 `not_shareable` (sharing a final trip).
Sharing twice answers 201 with the same link.
"""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from taxi.infra.openapi import BAD_REQUEST
from trips.ratings import rating_create
from trips.selectors import trip_events_for_user
from trips.serializers import (
    ErrorSerializer,
    RatingCreateSerializer,
    RatingSerializer,
    SharedTripSerializer,
    ShareLinkSerializer,
    TripEventSerializer,
    validated,
)
from trips.sharing import share_create, share_expires_at, shared_view
from trips.throttles import ScopeThrottle
from trips.views.trips import _ERRORS, _TRIP_ID, TripView, _trip_id


class TripRatingView(TripView):
    @extend_schema(
        operation_id="trip_rate",
        summary="Rate the other side of a completed trip (rider or assigned driver)",
        description=(
            "The rider rates the driver and the driver rates the rider, once each, within "
            "RATING_WINDOW_S (7 days) of the trip's end. The ratee's `rating` "
            "(`{average, count}` on the user object) counts it at once."
        ),
        parameters=[_TRIP_ID],
        request=RatingCreateSerializer,
        responses={
            201: RatingSerializer,
            400: BAD_REQUEST,
            **_ERRORS,
            409: OpenApiResponse(
                ErrorSerializer,
                description="`already_rated`: the caller's side has rated this trip; "
                "`not_rateable`: the trip is not COMPLETED, or its rating window has closed.",
            ),
        },
    )
    def post(self, request: Request, trip_id: str) -> Response:
        trip_uuid = _trip_id(trip_id)
        data = validated(RatingCreateSerializer, request.data)
        rating = rating_create(trip_id=trip_uuid, user=request.user, **data)
        return Response(RatingSerializer(rating).data, status=status.HTTP_201_CREATED)


class TripShareView(TripView):
    @extend_schema(
        operation_id="trip_share",
        summary="A public follow link for the trip (the rider)",
        description=(
            "One link per trip: calling again answers 201 with the same token. The link "
            "works until SHARE_LINK_AFTER_END_S (30 min) after the trip ends."
        ),
        parameters=[_TRIP_ID],
        request=None,
        responses={
            201: ShareLinkSerializer,
            **_ERRORS,
            403: OpenApiResponse(
                ErrorSerializer,
                description="`forbidden`: the trip's driver (only its rider shares it), or a "
                "session call without its CSRF token.",
            ),
            409: OpenApiResponse(
                ErrorSerializer, description="`not_shareable`: the trip has ended."
            ),
        },
    )
    def post(self, request: Request, trip_id: str) -> Response:
        link = share_create(trip_id=_trip_id(trip_id), user=request.user)
        body = {
            "token": link.token,
            "url": request.build_absolute_uri(reverse("shared_trip", args=[link.token])),
            "expires_at": share_expires_at(link.trip),
        }
        return Response(ShareLinkSerializer(body).data, status=status.HTTP_201_CREATED)


class SharedTripView(APIView):
    """Public: the link is the credential. Throttled per client address."""

    authentication_classes = ()
    permission_classes = (permissions.AllowAny,)
    throttle_classes = (ScopeThrottle,)
    throttle_scope = "shared"

    @extend_schema(
        operation_id="shared_trip",
        summary="Follow a shared trip (no login)",
        description=(
            "The trip's status, the driver's first name and car, and while the driver is on "
            "the way or driving their position and ETA. Nothing about the rider."
        ),
        parameters=[
            OpenApiParameter(
                "token", OpenApiTypes.STR, OpenApiParameter.PATH, description="The link's token."
            )
        ],
        responses={
            200: SharedTripSerializer,
            404: OpenApiResponse(
                ErrorSerializer,
                description="`not_found`: no such link, or it expired "
                "(SHARE_LINK_AFTER_END_S after the trip ended).",
            ),
        },
    )
    def get(self, request: Request, token: str) -> Response:
        response = Response(SharedTripSerializer(shared_view(token=token)).data)
        # The token is in the URL: keep the answer out of shared caches.
        response["Cache-Control"] = "no-store"
        return response


class TripEventsView(TripView):
    @extend_schema(
        operation_id="trip_events",
        summary="The trip's history, oldest first (rider or assigned driver)",
        description=(
            "Every status change, recorded in the transaction that made it. A driver who "
            "gave the trip back to dispatch is no longer a participant."
        ),
        parameters=[_TRIP_ID],
        responses={200: TripEventSerializer(many=True), **_ERRORS},
    )
    def get(self, request: Request, trip_id: str) -> Response:
        events = trip_events_for_user(trip_id=_trip_id(trip_id), user=request.user)
        return Response(TripEventSerializer(events, many=True).data)
