"""The catalogue in the admin: products and their rates (every change of
rates is kept as a new rate card version), vehicles, and quotes (read only)."""

from django.contrib import admin

from pricing.models import Product, Quote, RateCard, Vehicle


class RateCardInline(admin.TabularInline):
    model = RateCard
    extra = 0
    can_delete = False
    ordering = ("-version",)
    fields = (
        "version",
        "created",
        "currency",
        "base",
        "per_km",
        "per_min",
        "minimum",
        "booking_fee",
        "cancellation_fee",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "capacity",
        "currency",
        "base",
        "per_km",
        "per_min",
        "minimum",
        "active",
        "position",
    )
    list_editable = ("active", "position")
    search_fields = ("code", "name")
    inlines = (RateCardInline,)

    def get_readonly_fields(self, request, obj=None) -> tuple:
        # Quotes and trips name a product by its code.
        return ("code",) if obj is not None else ()


@admin.register(Vehicle)
class VehicleAdmin(admin.ModelAdmin):
    list_display = ("driver", "make", "model", "color", "plate", "capacity", "updated")
    search_fields = ("driver__username", "plate")
    filter_horizontal = ("products",)
    raw_id_fields = ("driver",)


@admin.register(Quote)
class QuoteAdmin(admin.ModelAdmin):
    list_display = ("id", "rider", "product", "created", "expires_at", "pickup_eta_s")
    list_filter = ("product",)
    date_hierarchy = "created"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
