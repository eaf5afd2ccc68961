"""Hostile input: API fuzzing, media zoo, brute force, access control, secrets."""
