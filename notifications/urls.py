from django.urls import path

from notifications import views

urlpatterns = [
    path("devices/", views.DeviceCreateView.as_view(), name="device_register"),
    # Ids are parsed by the view, so a malformed one is a JSON 404.
    path("devices/<str:device_id>/", views.DeviceDetailView.as_view(), name="device_delete"),
]
