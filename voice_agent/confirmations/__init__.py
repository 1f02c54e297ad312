"""Appointment confirmations: steps planned by clinic policy, run exactly once, answered by
WhatsApp reply, by voice (the Realtime receptionist in confirmation mode) or by keypad."""
