from django.urls import path

from pages import views

urlpatterns = [
    path("", views.landing, name="landing"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("app/", views.rider_and_driver_app, name="app"),
    path("ops/", views.ops_console, name="ops"),
    path("ops/trip/<uuid:trip_id>/", views.ops_trip, name="ops_trip"),
]
