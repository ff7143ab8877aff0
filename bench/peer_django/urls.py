from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("v1/environments/<slug:env>/login", views.password_step),
    path("v1/environments/<slug:env>/login/two-factor", views.code_step),
    path("healthz", views.healthz),
    path("readyz", views.readyz),
]
