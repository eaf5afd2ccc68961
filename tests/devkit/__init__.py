"""The development kit that tests/ and loadtest/ share: isolated and private stacks (stack, privstack),
an API client (client), generated media (media), metric scraping (metrics), hostile HTTP clients
(hostile_http), receivers of traces, webhooks and mail drips (otlp, receiver), test keys (keys), free
ports (net) and the benchmark's ffmpeg-alone baseline (ffmpeg_baseline).

Installed with the project (pyproject.toml finds it in tests/ beside `services`), so both import it
by name, without sys.path edits; it is not imported as `tests.devkit`. Never in an image: the Dockerfile
and .dockerignore let in only services/.
"""
