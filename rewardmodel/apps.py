from django.apps import AppConfig


class RewardModelConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "rewardmodel"
    verbose_name = "Reward models"
