"""Devices over REST (PROTOCOL.md Part 2, "Devices and push notifications").

`POST /api/devices/` answers 201 with the device, also when the token was
registered before (the same id: registering is idempotent).
`DELETE /api/devices/<id>/` is the owner's; anyone else's is a 404.
"""

from uuid import UUID

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications.serializers import DeviceCreateSerializer, DeviceSerializer
from notifications.services import device_delete, device_register
from taxi.infra.parsers import JSONParser
from trips import sockets
from trips.authentication import LOGIN_CLAIM
from trips.errors import NotFound
from trips.serializers import ErrorSerializer
from trips.throttles import ScopeThrottle


def registered_with(request: Request) -> tuple[str | None, str | None]:
    """The log-in (a Bearer token's) or the session (a cookie's) the request
    came with, as log-out will name them."""
    token = request.auth
    login = token.get(LOGIN_CLAIM) if hasattr(token, "get") else None
    session = None
    if isinstance(request.successful_authenticator, SessionAuthentication):
        session = sockets.session_digest(request.session.session_key)
    return (login if isinstance(login, str) else None), session


class DeviceCreateView(APIView):
    parser_classes = (JSONParser,)
    throttle_classes = (ScopeThrottle,)
    throttle_scope = "devices"

    @extend_schema(
        operation_id="device_register",
        summary="Register this device for push notifications",
        description=(
            "`platform` `fcm` (an FCM registration token), `apns` (an APNs device "
            "token, hex) or `webpush` (the browser's PushSubscription, as an object "
            "or a JSON string; its endpoint must be a known push service). "
            "Registering a token again answers the same device, now the caller's. "
            "Log-out (`POST /api/log_out/`) removes the devices registered with that "
            "log-in or session. The service sends `trip.updated` to a rider with no "
            "open socket (a change the rider did not make). `trip.offer` to a driver "
            "whose sockets did not acknowledge it follows once acknowledgements "
            '(PROTOCOL.md Part 2, "WebSocket, extended") are served.'
        ),
        request=DeviceCreateSerializer,
        responses={201: DeviceSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = DeviceCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        login, session = registered_with(request)
        device = device_register(
            user=request.user,
            token=serializer.validated_data["token"],
            login=login,
            session=session,
        )
        return Response(DeviceSerializer(device).data, status=status.HTTP_201_CREATED)


class DeviceDetailView(APIView):
    @extend_schema(
        operation_id="device_delete",
        summary="Stop push notifications to this device (its owner)",
        parameters=[OpenApiParameter("device_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={
            204: None,
            404: OpenApiResponse(
                ErrorSerializer, description="`not_found`: no such device of the caller's."
            ),
        },
    )
    def delete(self, request: Request, device_id: str) -> Response:
        try:
            device_uuid = UUID(device_id)
        except ValueError:
            raise NotFound() from None
        device_delete(device_id=device_uuid, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
