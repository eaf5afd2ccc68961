"""vid2mp3: the command-line client and Python SDK of a vid2mp3 server.

    from vid2mp3 import Client
    client = Client("https://vid2mp3.example.com", api_key="v2m_…")
    job = client.wait(client.upload("talk.mp4", {"bitrate": "192k"}).job_id)
    client.download(job, "talk.mp3")
"""
from .errors import ApiError, AuthError, JobFailed, NetworkError, UsageError, Vid2mp3Error
from .models import Account, Job, Preset, Upload
from .sdk import Client
from .webhooks import InvalidWebhook, verify_webhook

__version__ = "0.1.0"
__all__ = ["Client", "Job", "Upload", "Account", "Preset", "ApiError", "AuthError", "JobFailed", "NetworkError",
           "UsageError", "Vid2mp3Error", "InvalidWebhook", "verify_webhook"]
