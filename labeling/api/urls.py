from django.urls import URLPattern, URLResolver, include, path

from labeling.api import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("auth/token", views.TokenApi.as_view(), name="api-token"),
    path("projects/", views.ProjectListApi.as_view(), name="api-projects"),
    path("projects/<int:project_id>/", views.ProjectDetailApi.as_view(), name="api-project"),
    path("projects/<int:project_id>/progress", views.ProjectProgressApi.as_view(), name="api-project-progress"),
    path("projects/<int:project_id>/members/", views.MemberListApi.as_view(), name="api-members"),
    path("projects/<int:project_id>/members/<str:username>", views.MemberDetailApi.as_view(), name="api-member"),
    path("projects/<int:project_id>/next", views.NextTaskApi.as_view(), name="api-next"),
    path(
        "projects/<int:project_id>/tasks/<int:task_id>/judgments",
        views.JudgmentSubmitApi.as_view(),
        name="api-judgment-submit",
    ),
    path(
        "projects/<int:project_id>/tasks/<int:task_id>/demonstrations",
        views.DemonstrationSubmitApi.as_view(),
        name="api-demonstration-submit",
    ),
    path("projects/<int:project_id>/tasks/<int:task_id>/skip", views.SkipApi.as_view(), name="api-skip"),
    path("projects/<int:project_id>/imports", views.ImportApi.as_view(), name="api-import"),
    path("imports/<int:job_id>", views.ImportJobApi.as_view(), name="api-import-job"),
]

urlpatterns.append(path("", include("labeling.api.exports")))
