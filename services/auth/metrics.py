"""auth's own metrics (logins, registrations, token checks). Names are the contract of the dashboards and alerts."""
from prometheus_client import Counter

LOGINS = Counter("auth_logins", "Login attempts by outcome", ["result"])
REGISTRATIONS = Counter("auth_registrations", "Registration attempts by outcome", ["result"])
TOKEN_VALIDATIONS = Counter("auth_token_validations", "Token validations by outcome", ["result"])
