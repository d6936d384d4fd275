from django.urls import path

from trips.views import auth

urlpatterns = [
    path("sign_up/", auth.SignUpView.as_view(), name="sign_up"),
    path("log_in/", auth.LogInView.as_view(), name="log_in"),
    path("log_out/", auth.LogOutView.as_view(), name="log_out"),
    path("token/refresh/", auth.TokenRefresh.as_view(), name="token_refresh"),
]
