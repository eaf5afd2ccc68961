"""notification: emails the owner of a job when its result is ready or it failed, and calls its webhook when it ends."""
