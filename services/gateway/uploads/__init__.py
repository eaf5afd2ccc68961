"""Uploads: multipart (POST /upload, multipart.py) and tus (/uploads/, tus.py over resumable.py), both
ending in intake.py, where the stored video becomes a job."""
