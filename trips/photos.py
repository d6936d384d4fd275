"""Sign-up photos: bounded in pixels before they are decoded, then re-encoded.

A PNG of a few KiB can declare 12,000 x 12,000 pixels and decode to hundreds
of megabytes; its size is in the header, which Pillow reads without decoding
the rest, so the bound is checked first. What is stored is a fresh JPEG of
the decoded pixels, never the uploaded bytes: no metadata (EXIF, GPS, camera)
survives, whatever format came in, and no file that merely passed for an
image reaches the media directory.
"""

import io
import uuid
import warnings

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from PIL import Image, ImageOps
from rest_framework import serializers

# Stored photos are at most this many pixels on their longer side: an avatar
# needs no more, and a smaller file is served faster.
STORED_MAX_SIDE = 2048
JPEG_QUALITY = 85


class PhotoField(serializers.ImageField):
    """DRF's image field, which opens and verifies the upload; before that,
    one that declares too many pixels is refused from its header."""

    def to_internal_value(self, data: object) -> object:
        if isinstance(data, UploadedFile):
            _check_pixels(data)
        return super().to_internal_value(data)


def _check_pixels(upload: UploadedFile) -> None:
    upload.seek(0)
    try:
        # Pillow's own alarm (a warning past ~89 megapixels, an error past
        # twice that) is this check, done with the site's limit instead.
        with warnings.catch_warnings(action="ignore", category=Image.DecompressionBombWarning):
            with Image.open(upload) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        raise serializers.ValidationError(_too_many_pixels()) from None
    except (OSError, ValueError, SyntaxError):
        return  # not an image: the field says so
    finally:
        upload.seek(0)
    if width * height > settings.PHOTO_MAX_PIXELS:
        raise serializers.ValidationError(_too_many_pixels(f"this one is {width} x {height}"))


def _too_many_pixels(detail: str = "this one has more") -> str:
    return f"The photo must be at most {settings.PHOTO_MAX_PIXELS / 1e6:g} megapixels; {detail}."


def photo_reencoded(upload: UploadedFile) -> ContentFile:
    """`upload` as a metadata-free JPEG; ValidationError when it declares more
    than PHOTO_MAX_PIXELS or does not decode."""
    _check_pixels(upload)  # again: this function may be called on its own
    try:
        with Image.open(upload) as image:
            # The camera's rotation, applied to the pixels, since the EXIF
            # tag that carried it is dropped.
            upright = ImageOps.exif_transpose(image)
            upright.thumbnail((STORED_MAX_SIDE, STORED_MAX_SIDE))
            rgb = _on_white(upright)
            # Pillow writes some of what it read back out (a JPEG comment, an
            # ICC profile, XMP): the new file gets the pixels only.
            rgb.info = {}
            buffer = io.BytesIO()
            rgb.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        # Truncated or corrupt data that passed the header check.
        raise serializers.ValidationError("Upload a valid image.") from None
    return ContentFile(buffer.getvalue(), name=f"{uuid.uuid4().hex}.jpg")


def _on_white(image: Image.Image) -> Image.Image:
    """RGB; transparent parts (PNG, GIF) become white rather than black."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
