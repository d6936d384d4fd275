from django.contrib import admin

from dispatch.models import Offer


@admin.register(Offer)
class OfferAdmin(admin.ModelAdmin):
    list_display = ("id", "trip", "driver", "status", "expires_at", "distance_km", "created")
    list_filter = ("status",)
    search_fields = ("id", "trip__id", "driver__username")
    raw_id_fields = ("trip", "driver")
    readonly_fields = ("id", "created", "updated")
