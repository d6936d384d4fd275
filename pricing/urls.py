from django.urls import path

from pricing import ops, views

urlpatterns = [
    path("products/", views.ProductListView.as_view(), name="product_list"),
    path("quotes/", views.QuoteCreateView.as_view(), name="quote_create"),
    path("driver/vehicle/", views.VehicleView.as_view(), name="driver_vehicle"),
    path("ops/surge/", ops.SurgeMapView.as_view(), name="ops_surge"),
]
