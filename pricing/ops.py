"""Pricing for staff over REST: the surge map the ops console draws
(PROTOCOL.md Part 2, "Web pages": surge by cell)."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pricing import surge
from trips.serializers import ErrorSerializer


class IsStaff(permissions.BasePermission):
    message = "Only staff can do that."

    def has_permission(self, request: Request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff)


class SurgeCellSerializer(serializers.Serializer):
    cell = serializers.CharField(help_text="H3 cell index.")
    multiplier = serializers.CharField(help_text='Published multiplier, one decimal ("1.5").')
    supply = serializers.IntegerField(help_text="Available drivers in the cell itself.")
    demand = serializers.IntegerField(
        help_text="Requests in the cell itself over the demand window (SURGE_DEMAND_WINDOW_S)."
    )
    boundary = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        help_text="The cell's outline as [lat, lng] points.",
    )


class SurgeMapSerializer(serializers.Serializer):
    resolution = serializers.IntegerField(help_text="H3 resolution (SURGE_H3_RES).")
    updated_at = serializers.DateTimeField(
        allow_null=True, help_text="The refresh that published this map; null when none is live."
    )
    max = serializers.CharField(help_text="Highest multiplier possible (SURGE_MAX).")
    cells = SurgeCellSerializer(
        many=True,
        help_text=(
            f"Surging cells first, then those with drivers or requests, at most "
            f"{surge.MAP_MAX_CELLS}. A multiplier reads the cell and its neighbours."
        ),
    )


class SurgeMapView(APIView):
    permission_classes = (permissions.IsAuthenticated, IsStaff)

    @extend_schema(
        summary="Surge by cell, for the ops console (staff)",
        responses={
            200: SurgeMapSerializer,
            401: OpenApiResponse(ErrorSerializer, description="`not_authenticated`."),
            403: OpenApiResponse(ErrorSerializer, description="`forbidden`: not staff."),
            503: OpenApiResponse(
                ErrorSerializer, description="`unavailable`: the surge store did not answer."
            ),
        },
    )
    def get(self, request: Request) -> Response:
        return Response(surge.snapshot())
