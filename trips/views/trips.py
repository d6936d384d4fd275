"""Trips over REST (PROTOCOL.md, "Trips").

Each view parses, lets one service or selector decide (including who may do
what), and serialises. Errors are domain errors; `taxi.exceptions` turns them
into `{"detail", "code"}` with their status.
"""

from uuid import UUID

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dispatch.offers import offer_decline
from taxi.infra.openapi import BAD_REQUEST
from taxi.infra.parsers import JSONParser
from trips.errors import InvalidInput, NotFound
from trips.models import Trip
from trips.selectors import trip_get_for_user, trip_list_for_user
from trips.serializers import (
    ErrorSerializer,
    TripCancelSerializer,
    TripCreateSerializer,
    TripMoveSerializer,
    TripPageSerializer,
    TripSerializer,
)
from trips.services import trip_accept, trip_cancel, trip_create, trip_move
from trips.throttles import TripCreateThrottle

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_CHARS = 255
# Above any real list, below what the databases' OFFSET accepts.
MAX_OFFSET = 2**31 - 1


def _trip_id(raw: str) -> UUID:
    """The trip id from the URL; a malformed one names no trip the caller can see."""
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound() from None


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise InvalidInput(
            f"{IDEMPOTENCY_HEADER} must be at most {MAX_IDEMPOTENCY_KEY_CHARS} characters."
        )
    return key or None


def _status_filter(request: Request) -> str | None:
    value = request.query_params.get("status", "")
    if value and value not in Trip.Status.values:
        raise InvalidInput(f"status must be one of {', '.join(Trip.Status.values)}.")
    return value or None


def _whole_number(request: Request, name: str, *, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    # ASCII digits only: int() would also take " 7", "+7", "1_0" and other scripts' digits.
    well_formed = raw.isascii() and raw.isdigit() and len(raw) <= len(str(high))
    if not well_formed or not low <= int(raw) <= high:
        raise InvalidInput(f"{name} must be a whole number from {low} to {high}.")
    return int(raw)


class TripPagination(LimitOffsetPagination):
    """Pages only when asked: with neither `limit` nor `offset` the list comes
    whole (PROTOCOL.md). A malformed value is a 400 rather than DRF's silent
    fallback; a limit above the maximum is capped."""

    default_limit = 20
    max_limit = 100

    def paginate_queryset(self, queryset: QuerySet, request: Request, view=None) -> list | None:
        params = request.query_params
        if self.limit_query_param not in params and self.offset_query_param not in params:
            return None
        return super().paginate_queryset(queryset, request, view)

    def get_limit(self, request: Request) -> int:
        limit = _whole_number(request, self.limit_query_param, low=1, high=MAX_OFFSET)
        return self.default_limit if limit is None else min(limit, self.max_limit)

    def get_offset(self, request: Request) -> int:
        return _whole_number(request, self.offset_query_param, low=0, high=MAX_OFFSET) or 0


# OpenAPI: the error bodies each call can answer with.
_ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="`not_authenticated`."),
    404: OpenApiResponse(
        ErrorSerializer,
        description="`not_found`: no such trip (or a malformed id), or not yours to see.",
    ),
}
_TRIP_ID = OpenApiParameter(
    "trip_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The trip's id."
)
_TRIP_LIST = PolymorphicProxySerializer(
    component_name="TripListOrPage",
    serializers=[TripSerializer(many=True), TripPageSerializer],
    resource_type_field_name=None,
    many=False,
)


def _trip_body(trip: Trip, request: Request) -> dict:
    return TripSerializer(trip, context={"request": request}).data


class TripView(APIView):
    # Trip bodies are JSON only (PROTOCOL.md); anything else is a 415 `invalid`.
    parser_classes = (JSONParser,)


class TripListCreateView(TripView):
    def get_throttles(self) -> list:
        # Requesting trips is rate-limited (per rider, one budget with the
        # socket's `create.trip`); reading them is not.
        return [TripCreateThrottle()] if self.request.method == "POST" else []

    @extend_schema(
        operation_id="trip_list",
        summary="The caller's trips, newest first",
        description=(
            "A rider's own trips; a driver's assigned trips and the trip currently "
            "offered to them. With `limit` or `offset` the answer is one page "
            "`{count, next, previous, results}` (`limit` defaults to 20, at most 100); "
            "without them, the whole list."
        ),
        parameters=[
            OpenApiParameter(
                "status",
                enum=[*Trip.Status.values, ""],
                description="Only this status (empty: all).",
            ),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_OFFSET},
                description="Page size: 1 or more, capped at 100.",
            ),
            OpenApiParameter(
                "offset",
                {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
                description="Trips to skip, from 0.",
            ),
        ],
        responses={200: _TRIP_LIST, 400: BAD_REQUEST, 401: _ERRORS[401]},
    )
    def get(self, request: Request) -> Response:
        trips = trip_list_for_user(user=request.user, status=_status_filter(request))
        paginator = TripPagination()
        page = paginator.paginate_queryset(trips, request, view=self)
        context = {"request": request}
        if page is None:
            return Response(TripSerializer(trips, many=True, context=context).data)
        return paginator.get_paginated_response(
            TripSerializer(page, many=True, context=context).data
        )

    @extend_schema(
        operation_id="trip_create",
        summary="Request a trip (riders)",
        description=(
            "Creates a `REQUESTED` trip for the caller and starts dispatch; with "
            "`scheduled_for`, a `SCHEDULED` one, dispatched shortly before that time. "
            "`id`, `status`, `rider`, `driver` and `version` in the body are ignored. "
            "Retrying with the same `Idempotency-Key` returns the first trip "
            "(201, same trip) instead of creating a second."
        ),
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                str,
                OpenApiParameter.HEADER,
                description=f"Client retry key, at most {MAX_IDEMPOTENCY_KEY_CHARS} characters.",
            )
        ],
        request=TripCreateSerializer,
        responses={
            201: TripSerializer,
            400: OpenApiResponse(
                BAD_REQUEST.response,
                description=f"{BAD_REQUEST.description} `quote_mismatch`: the quote named "
                "is for another product, or for places more than 100 m away.",
            ),
            401: _ERRORS[401],
            403: OpenApiResponse(ErrorSerializer, description="`forbidden`: not a rider."),
            404: OpenApiResponse(
                ErrorSerializer, description="`not_found`: `quote_id` names no quote of yours."
            ),
            409: OpenApiResponse(
                ErrorSerializer,
                description="`active_trip_exists`: the rider already rides; "
                "`quote_expired`: the quote named is past its `expires_at`; "
                "`too_many_scheduled`: the rider already holds SCHEDULE_MAX_PER_RIDER (5) "
                "SCHEDULED trips.",
            ),
            429: OpenApiResponse(ErrorSerializer, description="`rate_limited`."),
        },
    )
    def post(self, request: Request) -> Response:
        idempotency_key = _idempotency_key(request)
        serializer = TripCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        trip = trip_create(
            rider=request.user, idempotency_key=idempotency_key, **serializer.validated_data
        )
        return Response(_trip_body(trip, request), status=status.HTTP_201_CREATED)


class TripDetailView(TripView):
    @extend_schema(
        operation_id="trip_retrieve",
        summary="One trip: the truth after a missed push",
        parameters=[_TRIP_ID],
        responses={200: TripSerializer, **_ERRORS},
    )
    def get(self, request: Request, trip_id: str) -> Response:
        trip = trip_get_for_user(trip_id=_trip_id(trip_id), user=request.user)
        return Response(_trip_body(trip, request))


_OFFER_NOT_AVAILABLE = OpenApiResponse(
    ErrorSerializer,
    description="`offer_not_available`: no live offer for the caller (expired, declined, "
    "withdrawn or taken), or no such trip.",
)
_INVALID_TRANSITION = OpenApiResponse(
    ErrorSerializer,
    description="`invalid_transition`: not a move the caller may make now; the trip is unchanged.",
)


class TripAcceptView(TripView):
    @extend_schema(
        operation_id="trip_accept",
        summary="Accept the caller's live offer (drivers)",
        parameters=[_TRIP_ID],
        request=None,
        responses={200: TripSerializer, **_ERRORS, 409: _OFFER_NOT_AVAILABLE},
    )
    def post(self, request: Request, trip_id: str) -> Response:
        trip = trip_accept(trip_id=_trip_id(trip_id), driver=request.user)
        return Response(_trip_body(trip, request))


class TripDeclineView(TripView):
    @extend_schema(
        operation_id="trip_decline",
        summary="Decline the caller's live offer (drivers)",
        parameters=[_TRIP_ID],
        request=None,
        responses={
            204: OpenApiResponse(description="Declined; the trip goes to another driver."),
            **_ERRORS,
            409: _OFFER_NOT_AVAILABLE,
        },
    )
    def post(self, request: Request, trip_id: str) -> Response:
        offer_decline(trip_id=_trip_id(trip_id), driver=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TripStatusView(TripView):
    @extend_schema(
        operation_id="trip_move",
        summary="At the pick-up (ARRIVED), picked up (IN_PROGRESS) or dropped off "
        "(COMPLETED) (assigned driver)",
        description=(
            "With RIDE_PIN_REQUIRED, IN_PROGRESS needs the rider's `pin`: a wrong one "
            "is 409 `invalid_pin`, and the fifth wrong one `pin_locked`, after which "
            "the trip can only be canceled."
        ),
        parameters=[_TRIP_ID],
        request=TripMoveSerializer,
        responses={
            200: TripSerializer,
            400: BAD_REQUEST,
            **_ERRORS,
            409: OpenApiResponse(
                ErrorSerializer,
                description="`invalid_transition`, `invalid_pin`, `pin_locked`.",
            ),
        },
    )
    def post(self, request: Request, trip_id: str) -> Response:
        trip_uuid = _trip_id(trip_id)
        serializer = TripMoveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        trip = trip_move(
            trip_id=trip_uuid,
            user=request.user,
            status=serializer.validated_data["status"],
            pin=serializer.validated_data["pin"],
        )
        return Response(_trip_body(trip, request))


class TripCancelView(TripView):
    @extend_schema(
        operation_id="trip_cancel",
        summary="Cancel (the rider, or the assigned driver before pick-up)",
        description=(
            "A rider's cancel ends the trip (CANCELED); one more than RIDER_FREE_CANCEL_S "
            "after a driver accepted costs the product's `cancellation_fee`. The assigned "
            "driver's cancel sends the trip back to dispatch without them (REQUESTED, "
            "`status_reason` `driver_canceled`, `driver` null), except `reason_code` "
            "`rider_no_show` NO_SHOW_WAIT_S after arriving, which cancels it with the fee."
        ),
        parameters=[_TRIP_ID],
        request=TripCancelSerializer,
        responses={
            200: TripSerializer,
            400: BAD_REQUEST,
            **_ERRORS,
            409: OpenApiResponse(
                ErrorSerializer,
                description="`invalid_transition`; `too_early`: a no-show before the wait is over.",
            ),
        },
    )
    def post(self, request: Request, trip_id: str) -> Response:
        trip_uuid = _trip_id(trip_id)
        serializer = TripCancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        trip = trip_cancel(
            trip_id=trip_uuid,
            user=request.user,
            reason=serializer.validated_data["reason"],
            reason_code=serializer.validated_data["reason_code"],
        )
        return Response(_trip_body(trip, request))
