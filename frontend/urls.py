from django.contrib.auth import views as auth_views
from django.urls import path

from frontend import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("render", views.markdown_preview, name="markdown-preview"),
    path("projects/<int:project_id>/", views.project_home, name="project"),
    path("projects/<int:project_id>/label", views.label, name="label"),
    path("projects/<int:project_id>/dashboard", views.dashboard, name="dashboard"),
    path("projects/<int:project_id>/settings", views.project_edit, name="project-edit"),
    path("projects/<int:project_id>/members", views.members, name="members"),
    path("projects/<int:project_id>/members/<str:username>/remove", views.member_remove, name="member-remove"),
    path("projects/<int:project_id>/import", views.import_page, name="import"),
    path("projects/<int:project_id>/export", views.export_page, name="export"),
    path("manage/", views.manage_projects, name="manage-projects"),
    path("manage/new", views.project_create, name="project-create"),
]
