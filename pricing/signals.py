"""Every process's copy of the catalogue follows the admin's edits (`pricing.catalogue`)."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from pricing import catalogue
from pricing.models import Product, RateCard


@receiver(post_save, sender=Product)
@receiver(post_save, sender=RateCard)
@receiver(post_delete, sender=Product)
@receiver(post_delete, sender=RateCard)
def catalogue_changed(**_kwargs) -> None:
    catalogue.changed()
