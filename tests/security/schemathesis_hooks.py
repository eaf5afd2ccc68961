"""Loaded by the schemathesis CLI (SCHEMATHESIS_HOOKS): how to send the request bodies it has no
serializer for. A tus PATCH body is raw bytes, as application/octet-stream is."""
import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
