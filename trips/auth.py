"""Accounts: sign-up, tokens and their claims, and the driver-only permission."""

import secrets

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from drf_spectacular.utils import extend_schema_field
from rest_framework import permissions, serializers
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import RefreshToken

from trips.authentication import LOGIN_CLAIM
from trips.fields import TextField
from trips.models import User
from trips.photos import PhotoField, photo_reencoded

# The claims PROTOCOL.md puts in every access token, besides the user id.
TOKEN_CLAIMS = ("username", "first_name", "last_name", "group")


class IsDriver(permissions.BasePermission):
    """REST calls only drivers make (presence, positions, the vehicle)."""

    message = "Only drivers can do that."

    def has_permission(self, request: Request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_driver)


def tokens_for(user: User) -> dict[str, str]:
    """A fresh refresh/access pair; claims set on the refresh token carry over
    to every access token derived from it, including refreshed ones."""
    refresh = RefreshToken.for_user(user)
    # simplejwt writes the id as a string; the user object's `id` is a number,
    # and the claim should compare equal to it.
    refresh[api_settings.USER_ID_CLAIM] = user.pk
    for claim in TOKEN_CLAIMS:
        refresh[claim] = getattr(user, claim)
    # A random id per log-in, in the refresh token and so in every access
    # token minted from it: revoking the refresh token (log-out) refuses
    # those access tokens and closes the sockets opened with them, and no
    # other log-in's (trips/authentication.py, trips/sockets.py).
    refresh[LOGIN_CLAIM] = secrets.token_urlsafe(12)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


class RatingSummarySerializer(serializers.Serializer):
    average = serializers.FloatField(help_text="Mean stars, 1 to 5, to two places.")
    count = serializers.IntegerField()


class UserSerializer(serializers.ModelSerializer):
    rating = serializers.SerializerMethodField(
        help_text="The ratings this user received: {average, count}; null before any."
    )

    class Meta:
        model = User
        fields = ("id", "username", "first_name", "last_name", "group", "photo", "rating")
        read_only_fields = fields

    @extend_schema_field(RatingSummarySerializer(allow_null=True))
    def get_rating(self, user: User) -> dict | None:
        return user.rating


class SignUpSerializer(serializers.Serializer):
    username = TextField(max_length=150)
    password1 = TextField(write_only=True, max_length=128, trim_whitespace=False)
    password2 = TextField(write_only=True, max_length=128, trim_whitespace=False)
    first_name = TextField(max_length=150)
    last_name = TextField(max_length=150)
    group = serializers.ChoiceField(choices=User.Group.choices, default=User.Group.RIDER)
    photo = PhotoField(required=False, allow_null=True)

    def validate_username(self, value: str) -> str:
        username_field = User._meta.get_field("username")
        for validator in username_field.validators:
            try:
                validator(value)
            except DjangoValidationError as exc:
                raise serializers.ValidationError(list(exc.messages)) from None
        if User.objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError("A user with that username already exists.")
        return value

    def validate_photo(self, value: object) -> object:
        if value is None:
            return None
        if value.size > settings.PHOTO_MAX_BYTES:
            limit_mib = settings.PHOTO_MAX_BYTES / (1024 * 1024)
            raise serializers.ValidationError(f"The photo must be at most {limit_mib:g} MiB.")
        return photo_reencoded(value)

    def validate(self, attrs: dict) -> dict:
        if attrs["password1"] != attrs["password2"]:
            raise serializers.ValidationError({"password2": ["The two passwords differ."]})
        candidate = User(
            username=attrs["username"],
            first_name=attrs["first_name"],
            last_name=attrs["last_name"],
        )
        try:
            password_validation.validate_password(attrs["password1"], user=candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password1": list(exc.messages)}) from None
        return attrs

    def create(self, validated_data: dict) -> User:
        try:
            with transaction.atomic():
                return User.objects.create_user(
                    username=validated_data["username"],
                    password=validated_data["password1"],
                    first_name=validated_data["first_name"],
                    last_name=validated_data["last_name"],
                    group=validated_data["group"],
                    photo=validated_data.get("photo"),
                )
        except IntegrityError:
            # Two sign-ups raced for one name; the loser hears what the check says.
            raise serializers.ValidationError(
                {"username": ["A user with that username already exists."]}
            ) from None


class LogInSerializer(serializers.Serializer):
    username = TextField(max_length=150)
    password = TextField(max_length=128, trim_whitespace=False, write_only=True)


class LogOutSerializer(serializers.Serializer):
    refresh = TextField(required=False, max_length=4096)


class RefreshSerializer(TokenRefreshSerializer):
    # Write-only, as simplejwt's own: the answer carries the new access token only.
    refresh = TextField(max_length=4096, write_only=True)

    def validate(self, attrs: dict) -> dict:
        try:
            return super().validate(attrs)
        except User.DoesNotExist:
            # simplejwt looks the user up with `.get()`: a deleted user's token
            # would otherwise be a 500.
            raise AuthenticationFailed(
                self.error_messages["no_active_account"], "no_active_account"
            ) from None


class TokenPairSerializer(UserSerializer):
    access = serializers.CharField()
    refresh = serializers.CharField()

    class Meta(UserSerializer.Meta):
        fields = (*UserSerializer.Meta.fields, "access", "refresh")
        read_only_fields = fields
