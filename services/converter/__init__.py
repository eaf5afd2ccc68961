"""converter: turns queued videos into audio, MP3 or another format a job asks for (RabbitMQ worker around ffmpeg)."""
