from django.urls import path

from trips.views import after_ride, auth, trips

urlpatterns = [
    path("sign_up/", auth.SignUpView.as_view(), name="sign_up"),
    path("log_in/", auth.LogInView.as_view(), name="log_in"),
    path("log_out/", auth.LogOutView.as_view(), name="log_out"),
    path("token/refresh/", auth.TokenRefresh.as_view(), name="token_refresh"),
    # Trip ids are parsed by the views, so a malformed one is a JSON 404.
    path("trip/", trips.TripListCreateView.as_view(), name="trip_list"),
    path("trip/<str:trip_id>/", trips.TripDetailView.as_view(), name="trip_detail"),
    path("trip/<str:trip_id>/accept/", trips.TripAcceptView.as_view(), name="trip_accept"),
    path("trip/<str:trip_id>/decline/", trips.TripDeclineView.as_view(), name="trip_decline"),
    path("trip/<str:trip_id>/status/", trips.TripStatusView.as_view(), name="trip_status"),
    path("trip/<str:trip_id>/cancel/", trips.TripCancelView.as_view(), name="trip_cancel"),
    # After the ride (PROTOCOL.md Part 2).
    path("trip/<str:trip_id>/rating/", after_ride.TripRatingView.as_view(), name="trip_rating"),
    path("trip/<str:trip_id>/share/", after_ride.TripShareView.as_view(), name="trip_share"),
    path("trip/<str:trip_id>/events/", after_ride.TripEventsView.as_view(), name="trip_events"),
    path("shared/<str:token>/", after_ride.SharedTripView.as_view(), name="shared_trip"),
]
