"""Code every vid2mp3 service shares: configuration, telemetry, messaging, storage, web helpers."""
