"""auth's own metrics (logins, registrations, password hashing). Names are the contract of the
dashboards and alerts; every label takes a fixed set of values."""
from prometheus_client import Counter, Gauge, Histogram

# result: success, bad_credentials, rate_limited, too_busy
LOGINS = Counter("auth_logins", "Login attempts by outcome", ["result"])
# result: created, invalid, duplicate, rate_limited, too_busy
REGISTRATIONS = Counter("auth_registrations", "Registration attempts by outcome", ["result"])

# Password hashing, bounded to ARGON2_MAX_CONCURRENT at once (hashing.py). kind: hash, verify.
HASHES = Counter("auth_password_hashes", "argon2id computations started (hash: new password, verify: login)",
                 ["kind"])
HASHES_IN_PROGRESS = Gauge("auth_password_hashes_in_progress", "argon2id computations running now",
                           multiprocess_mode="livesum")
HASH_PLACES = Gauge("auth_password_hash_places", "argon2id computations allowed at once (ARGON2_MAX_CONCURRENT)",
                    multiprocess_mode="livesum")
HASH_QUEUED = Counter("auth_password_hash_queued", "Hashes that found every place taken and waited for one")
HASH_REFUSED = Counter("auth_password_hash_refused",
                       "Hashes refused after waiting ARGON2_WAIT_SECONDS for a place (answered 503 too_busy)")
HASH_WAIT = Histogram("auth_password_hash_wait_seconds", "Time a hash waited for its place",
                      buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5))

# Logins of an account with many recent failures (from any address) are slowed down, never refused.
LOGIN_SLOWDOWNS = Counter("auth_login_slowdowns", "Logins delayed because their account failed often recently")

# API keys checked for the gateway (api_keys.verify). result: valid, malformed, unknown, wrong_secret, expired
API_KEY_CHECKS = Counter("auth_api_key_checks", "API keys checked, by outcome", ["result"])
for _result in ("valid", "malformed", "unknown", "wrong_secret", "expired"):
    API_KEY_CHECKS.labels(_result)
API_KEYS_CREATED = Counter("auth_api_keys_created", "API keys made by their users")
API_KEYS_REVOKED = Counter("auth_api_keys_revoked", "API keys revoked by their users")
