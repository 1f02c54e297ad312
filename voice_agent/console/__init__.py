"""The staff console: server-rendered pages under ``/console`` (Jinja2 + a little htmx).

How to add a page (for whoever builds the next one):

1. **Router.** A module ``voice_agent/console/<page>.py`` with
   ``router = APIRouter(prefix="/console/<page>")``; add ``router.include_router(<page>.router)``
   in ``console/routes.py`` (that parent router checks CSRF on every POST/PUT/PATCH/DELETE, so
   your routes get it for free). If the page replaces a placeholder, delete it in ``pages.py``.
2. **Role.** Each route takes the user through ``require_role``::

       FrontDesk = Annotated[StaffUser, Depends(require_role(StaffRole.receptionist))]

       @router.get("")
       async def page(request: Request, user: FrontDesk) -> Response: ...

   Admin passes every check. No session: a GET redirects to the login form, anything else 401.
   Wrong role: the 403 page. A doctor's ``user.doctor_id`` limits what he may see: filter by it.
3. **Template.** ``console/templates/<page>.html`` extending ``base.html``; render with
   ``render(request, "<page>.html", user, **context)`` (``console/web.py``), which passes ``t``
   (the translator), ``user``, ``csrf_token``, ``nav``, ``clinic`` and ``lang``. Autoescape is on.
4. **Words.** Every visible text is ``{{ t("<page>.<key>") }}``, with the key added to
   ``prompts/pt-BR/console.yaml``, ``prompts/ru/console.yaml`` and ``prompts/en/console.yaml``
   (a test fails when the three differ or a template uses a missing key).
5. **Forms.** Each ``<form method="post">`` carries
   ``<input type="hidden" name="csrf_token" value="{{ csrf_token }}">``; htmx requests send the
   token from the ``hx-headers`` on ``<body>`` without anything more. Answer a plain form POST
   with a 303 redirect (post/redirect/get).
6. **Navigation.** ``NAV`` in ``console/web.py`` lists the bar's items and the roles that see each.
7. **Tests.** ``tests/console/conftest.py`` gives ``staff_client(role)``: a TestClient logged in
   through the real login form, with ``.csrf`` holding the session's token.
"""
