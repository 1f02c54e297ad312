"""Clinic data (admin only): a form per section, validated by the same model as the YAML file
with each error beside its field; every save a version (who, when, what changed); any version
exported back to YAML. The receptionist answers with a saved change at once in this process and
within seconds in the others (``ClinicHolder``).

A form carries the version it was built from: a save over a version someone else saved since is
refused (reload and redo) instead of silently undoing their change.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from voice_agent.clinic.forms import SECTIONS, SPECS, Applied, Form, FormError, apply, build
from voice_agent.clinic.versions import (
    ClinicEditError,
    Problem,
    document,
    export_yaml,
    save_version,
    validate,
    version,
    versions,
)
from voice_agent.console.accounts import StaffUser
from voice_agent.console.lookups import staff_emails, when
from voice_agent.console.security import require_role
from voice_agent.console.texts import Translator
from voice_agent.console.web import console, render
from voice_agent.store.staff_tables import StaffRole

router = APIRouter(prefix="/console/clinic")
Admin = Annotated[StaffUser, Depends(require_role(StaffRole.admin))]
MAX_FIELDS = 5000
"""A form of the biggest clinic has a few hundred fields; more is not a person typing."""


@router.get("")
async def clinic_page(request: Request, user: Admin) -> Response:
    services = console(request).services
    history = versions(services.engine, limit=50)
    return render(
        request,
        "clinic.html",
        user,
        sections=SECTIONS,
        history=history,
        staff=staff_emails(services.engine, [v.author_id for v in history]),
        current=services.clinic.version_id,
        when=when(services.clinic().tz),
    )


@router.get("/export")
async def export(request: Request, user: Admin, version_id: int | None = None) -> Response:
    found = version(console(request).services.engine, version_id)
    if found is None:
        return Response("no such version", status_code=404, media_type="text/plain")
    info, clinic = found
    return Response(
        export_yaml(clinic),
        media_type="application/yaml; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="clinic-v{info.id}.yaml"'},
    )


@router.get("/{section}")
async def section_page(
    request: Request, user: Admin, section: str, saved: int | None = None
) -> Response:
    if section not in SECTIONS:
        return render(request, "clinic_missing.html", user, status_code=404)
    services = console(request).services
    await asyncio.to_thread(services.clinic.refresh)  # another process may have saved one
    clinic = services.clinic()
    form = build(section, document(clinic), list(clinic.languages))
    return _form_page(request, user, section, form, base=services.clinic.version_id, saved=saved)


@router.post("/{section}")
async def save_section(request: Request, user: Admin, section: str) -> Response:
    if section not in SECTIONS:
        return render(request, "clinic_missing.html", user, status_code=404)
    services = console(request).services
    posted_form = await request.form(max_fields=MAX_FIELDS)
    posted = {k: v for k, v in posted_form.items() if isinstance(v, str)}
    # The newest version, wherever it was saved: a form built on an older one is refused below.
    await asyncio.to_thread(services.clinic.refresh)
    clinic = services.clinic()
    form = build(section, document(clinic), list(clinic.languages))
    current = services.clinic.version_id
    base = posted.get("base_version", "")
    t = Translator(services.settings.prompts_dir, console(request).language_for(user))
    if base != str(current):
        return _form_page(
            request,
            user,
            section,
            _keep(form, posted),
            base=current,
            general=[t("clinic.stale")],
            status_code=409,
        )
    applied: Applied | None = None
    try:
        applied = apply(section, document(clinic), posted)
        edited = validate(applied.doc)
    except FormError as error:
        errors = {
            name: t("clinic.errors.format", example=hint) for name, hint in error.fields.items()
        }
        return _form_page(
            request,
            user,
            section,
            _keep(form, posted),
            base=current,
            errors=errors,
            status_code=400,
        )
    except ClinicEditError as error:
        assert applied is not None
        errors = {}
        for path, problem in error.problems.items():
            errors.setdefault(applied.field_for(path), _say(t, problem))
        general = list(error.general)
        general += [
            msg for path, msg in error.fields.items() if applied.field_for(path) not in _names(form)
        ]
        return _form_page(
            request,
            user,
            section,
            _keep(form, posted),
            base=current,
            errors=errors,
            general=general,
            status_code=400,
        )
    if edited == clinic:
        return RedirectResponse(f"/console/clinic/{section}?saved=0", status_code=303)
    saved = save_version(services.engine, edited, source="console", author_id=user.id)
    services.clinic.reload()  # this process answers with it at once
    return RedirectResponse(f"/console/clinic/{section}?saved={saved.id}", status_code=303)


def _say(t: Translator, problem: Problem) -> str:
    key = f"clinic.errors.{problem.type}"
    return t(key, **problem.ctx) if t.has(key) else problem.message


def _names(form: Form) -> set[str]:
    return {f.name for item in form.items for f in item.fields}


def _keep(form: Form, posted: dict[str, str]) -> Form:
    """The form as the user sent it, so a refused save loses nothing they typed."""
    for item in form.items:
        for field in item.fields:
            if field.name in posted and not field.readonly:
                field.value = posted[field.name]
    return form


def _form_page(
    request: Request,
    user: StaffUser,
    section: str,
    form: Form,
    *,
    base: int | None,
    saved: int | None = None,
    errors: dict[str, str] | None = None,
    general: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    runtime = console(request)
    clinic = runtime.services.clinic()
    t = Translator(runtime.services.settings.prompts_dir, runtime.language_for(user))
    insurances = {i.id: i.name for i in clinic.insurances}
    for item in form.items:
        for field in item.fields:
            field.shown = _suffix(t, field.label, field.suffix, insurances)
    return render(
        request,
        "clinic_section.html",
        user,
        status_code=status_code,
        section=section,
        form=form,
        base=base,
        saved=saved,
        errors=errors or {},
        general=general or [],
        insurance_names=insurances,
        list_path=SPECS[section].path if section in SPECS else section,
    )


def _suffix(t: Translator, label: str, suffix: str, insurances: dict[str, str]) -> str:
    """What a field is for, in words: a language, a weekday, an insurance."""
    if not suffix:
        return ""
    if label in ("names", "title", "synonyms", "hours", "description"):
        return t(f"languages.{suffix}") if t.has(f"languages.{suffix}") else suffix
    if label == "working_hours":
        return t(f"clinic.days.{suffix}")
    if label == "insurance_prices":
        return insurances.get(suffix, suffix)
    return suffix
