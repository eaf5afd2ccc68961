"""converter: turns queued videos into audio (MP3 by default) (RabbitMQ worker around ffmpeg)."""
