from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from trips.models import Trip, User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "first_name", "last_name", "group", "is_active", "date_joined")
    list_filter = ("group", "is_active", "is_staff")
    fieldsets = (*DjangoUserAdmin.fieldsets, ("Taxi", {"fields": ("group", "photo")}))
    add_fieldsets = (*DjangoUserAdmin.add_fieldsets, ("Taxi", {"fields": ("group",)}))


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
