from django.urls import path

urlpatterns: list = [
    # Driver presence and positions (PROTOCOL.md, "Drivers") are added here.
]
