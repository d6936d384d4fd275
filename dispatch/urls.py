from django.urls import path

from dispatch import views

urlpatterns = [
    path("driver/online/", views.DriverOnlineView.as_view(), name="driver_online"),
    path("driver/offline/", views.DriverOfflineView.as_view(), name="driver_offline"),
    path("driver/location/", views.DriverLocationView.as_view(), name="driver_location"),
    path("driver/nearby/", views.DriverNearbyView.as_view(), name="driver_nearby"),
]
