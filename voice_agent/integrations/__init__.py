"""Clients of external services (Twilio REST, Google APIs, clinic REST APIs)."""
