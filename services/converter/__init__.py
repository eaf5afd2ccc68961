"""converter: turns queued videos into MP3s (RabbitMQ worker around ffmpeg)."""
