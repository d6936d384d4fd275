"""The catalogue a new installation starts with: `standard` (DEFAULT_PRODUCT)
and `xl`. Prices are examples, in US dollars; operators set theirs in the admin."""

from decimal import Decimal

from django.db import migrations

PRODUCTS = [
    {
        "code": "standard",
        "name": "Standard",
        "capacity": 4,
        "position": 0,
        "rates": {
            "base": "2.50",
            "per_km": "1.20",
            "per_min": "0.30",
            "minimum": "7.00",
            "booking_fee": "1.50",
            "cancellation_fee": "5.00",
        },
    },
    {
        "code": "xl",
        "name": "XL",
        "capacity": 6,
        "position": 1,
        "rates": {
            "base": "4.00",
            "per_km": "1.90",
            "per_min": "0.45",
            "minimum": "10.00",
            "booking_fee": "1.50",
            "cancellation_fee": "7.50",
        },
    },
]


def create(apps, schema_editor) -> None:
    Product = apps.get_model("pricing", "Product")
    RateCard = apps.get_model("pricing", "RateCard")
    for spec in PRODUCTS:
        rates = {name: Decimal(value) for name, value in spec["rates"].items()}
        product, created = Product.objects.get_or_create(
            code=spec["code"],
            defaults={
                "name": spec["name"],
                "capacity": spec["capacity"],
                "position": spec["position"],
                "currency": "USD",
                **rates,
            },
        )
        if created:
            RateCard.objects.create(product=product, version=1, currency="USD", **rates)


class Migration(migrations.Migration):
    dependencies = [("pricing", "0001_initial")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
