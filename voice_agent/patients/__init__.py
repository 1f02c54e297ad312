"""Patients: identity by phone, contact details validated, stored in the database only."""
