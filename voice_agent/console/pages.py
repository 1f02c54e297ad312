"""Placeholders for navigation pages not built yet: none are left (To do, Calls and Clinic have
their own modules: ``todo.py``, ``calls.py``, ``clinic_data.py``; the agenda ``agenda.py``).
A new page not ready yet renders ``empty.html`` from here."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/console")
