"""Sign-up, log-in, log-out and token refresh (PROTOCOL.md, "Authentication")."""

import logging

from django.contrib.auth import authenticate, login, logout
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.exceptions import AuthenticationFailed, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenRefreshView

from notifications.services import devices_forget_log_out
from taxi.infra.parsers import JSONParser
from trips import sockets
from trips.auth import (
    LogInSerializer,
    LogOutSerializer,
    RefreshSerializer,
    SignUpSerializer,
    TokenPairSerializer,
    UserSerializer,
    tokens_for,
)
from trips.authentication import LOGIN_CLAIM, login_revoke
from trips.serializers import ErrorSerializer
from trips.throttles import LogInUsernameThrottle, ScopeThrottle

logger = logging.getLogger(__name__)


# 400, 401, 403 and 429 follow from each view's configuration (taxi/infra/openapi.py);
# the views declare the rest.


class SignUpView(APIView):
    authentication_classes = ()
    permission_classes = (permissions.AllowAny,)
    # JSON, or multipart with a photo (PROTOCOL.md); every other call is JSON only.
    parser_classes = (JSONParser, FormParser, MultiPartParser)
    throttle_classes = (ScopeThrottle,)
    throttle_scope = "sign_up"

    @extend_schema(request=SignUpSerializer, responses={201: UserSerializer})
    def post(self, request: Request) -> Response:
        serializer = SignUpSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = serializer.save()
        logger.info("auth.signed_up", extra={"user_id": user.pk, "group": user.group})
        body = UserSerializer(user, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)


class LogInView(APIView):
    authentication_classes = ()
    permission_classes = (permissions.AllowAny,)
    # Per address, and per username from one address: guesses on one account
    # are limited, and nobody elsewhere can spend its owner's budget.
    throttle_classes = (ScopeThrottle, LogInUsernameThrottle)
    throttle_scope = "log_in"

    @extend_schema(
        request=LogInSerializer,
        responses={
            200: TokenPairSerializer,
            401: OpenApiResponse(
                ErrorSerializer, description="`not_authenticated`: wrong username or password."
            ),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = LogInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(
            request,
            username=serializer.validated_data["username"],
            password=serializer.validated_data["password"],
        )
        if user is None:
            raise AuthenticationFailed("No active account with those credentials.")
        login(request, user)
        logger.info("auth.logged_in", extra={"user_id": user.pk})
        body = {**UserSerializer(user, context={"request": request}).data, **tokens_for(user)}
        return Response(body)

    def get_authenticate_header(self, request: Request) -> str:
        # Without one DRF turns a refused log-in into a 403; PROTOCOL.md says 401.
        return JWTAuthentication().authenticate_header(request)


class LogOutView(APIView):
    @extend_schema(request=LogOutSerializer, responses={204: None})
    def post(self, request: Request) -> Response:
        serializer = LogOutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        raw = serializer.validated_data.get("refresh")
        login = None
        if raw:
            try:
                token = RefreshToken(raw)
            except TokenError:
                raise ValidationError(
                    {"refresh": ["The refresh token is invalid or expired."]}
                ) from None
            if str(token.get(jwt_settings.USER_ID_CLAIM)) != str(request.user.pk):
                raise ValidationError({"refresh": ["That refresh token is not yours."]})
            login = token.get(LOGIN_CLAIM)
            if isinstance(login, str):
                # Its access tokens stop working, on REST and for sockets.
                login_revoke(login)
            else:
                login = None
            token.blacklist()
        user_id = request.user.pk
        # The sockets opened with this session, or with this log-in's access
        # tokens, close (4003); the user's other devices keep theirs.
        session = sockets.session_digest(request.session.session_key)
        # The devices registered with this log-in (its refresh token's, or the
        # access token this call came with) or this session stop getting
        # notifications.
        access_login = request.auth.get(LOGIN_CLAIM) if hasattr(request.auth, "get") else None
        logins = {each for each in (login, access_login) if isinstance(each, str) and each}
        devices_forget_log_out(user_id=request.user.pk, logins=logins, session=session)
        logout(request)
        if login or session:
            sockets.sockets_revoke_on_commit(user_id, login=login, session=session)
        logger.info("auth.logged_out", extra={"user_id": user_id})
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenRefresh(TokenRefreshView):
    """simplejwt's refresh; revoked (blacklisted) refresh tokens are refused."""

    serializer_class = RefreshSerializer

    @extend_schema(
        responses={
            200: RefreshSerializer,
            401: OpenApiResponse(
                ErrorSerializer,
                description="`not_authenticated`: the refresh token is bad, expired or revoked.",
            ),
        }
    )
    def post(self, request: Request, *args, **kwargs) -> Response:
        return super().post(request, *args, **kwargs)
