from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from trips.models import Rating, Trip, TripEvent, User

# A driver's cancel: giving an accepted trip back to dispatch, or a no-show.
DRIVER_CANCELS = Q(
    trip_events__by=TripEvent.By.DRIVER,
    trip_events__from_status__in=Trip.BEFORE_PICK_UP,
    trip_events__to_status__in=(Trip.Status.REQUESTED, Trip.Status.CANCELED),
)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = (
        "username",
        "first_name",
        "last_name",
        "group",
        "is_active",
        "date_joined",
        "driver_cancels",
    )
    list_filter = ("group", "is_active", "is_staff")
    fieldsets = (*DjangoUserAdmin.fieldsets, ("Taxi", {"fields": ("group", "photo")}))
    add_fieldsets = (*DjangoUserAdmin.add_fieldsets, ("Taxi", {"fields": ("group",)}))

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return (
            super()
            .get_queryset(request)
            .annotate(driver_cancels=Count("trip_events", filter=DRIVER_CANCELS))
        )

    @admin.display(description="Cancels as driver", ordering="driver_cancels")
    def driver_cancels(self, user: User) -> int:
        return user.driver_cancels


class TripEventInline(admin.TabularInline):
    """The trip's history, as written by the services: read only."""

    model = TripEvent
    fields = ("at", "from_status", "to_status", "by", "user", "reason")
    readonly_fields = fields
    ordering = ("at", "pk")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    """Ratings are the riders' and drivers' word: staff read them, nobody edits."""

    list_display = ("trip", "side", "stars", "rater", "ratee", "comment", "created")
    list_filter = ("side", "stars")
    search_fields = ("trip__id", "rater__username", "ratee__username")
    list_select_related = ("trip", "rater", "ratee")
    date_hierarchy = "created"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Trip)
class TripAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "status",
        "status_reason",
        "product",
        "rider",
        "driver",
        "created",
        "version",
    )
    list_filter = ("status", "status_reason", "product")
    search_fields = ("id", "rider__username", "driver__username", "pick_up_address")
    raw_id_fields = ("rider", "driver", "rate_card", "quote")
    readonly_fields = ("id", "created", "updated", "version")
    date_hierarchy = "created"
    inlines = (TripEventInline,)
