"""The Google API client builder shared by the calendar and the Sheets/outbox jobs (below both;
imports no layer)."""
