"""The console's routes: pages (GET) and decisions (POST), each behind the login.

A GET without a valid session is sent to the login form; a POST without one,
without this session's CSRF token, or from another origin is answered 403 and
changes nothing. Every decision takes a reason (required, at most
``MAX_REASON`` characters) and goes through ``loopml.lifecycle``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from loopml.api.ui import data
from loopml.api.ui import session as sessions
from loopml.core.errors import (
    BrokerError,
    JobNotFoundError,
    LoopmlError,
    ModelNotFoundError,
    RunNotFoundError,
)
from loopml.core.settings import Settings

PREFIX = "/ui"
MAX_REASON = 1000
MAX_FORM_BYTES = 16 * 1024
ACTIONS = ("approve", "reject", "promote")
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
REPORT_CSP = (  # the monitoring report is self-contained: inline styles, data: images, no script
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)
DONE = {
    "approve": "approved: it is champion now",
    "reject": "rejected",
    "promote": "promoted to champion",
    "rollback": "rolled back to the previous champion",
    "resume": "queued to resume",
}


class RefusedError(Exception):
    """A request the console answers with an error page and changes nothing for."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("loopml.api.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters["q"] = lambda value: urllib.parse.quote(str(value), safe="")
    env.filters["qp"] = lambda value: urllib.parse.quote(str(value), safe="/")
    env.filters["when"] = _when
    env.filters["num"] = _num
    return env


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, int | float) and value > 1e11:  # MLflow milliseconds
        return datetime.fromtimestamp(value / 1000).strftime("%Y-%m-%d %H:%M:%S")
    return "-" if value is None else str(value)


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def _headers(csp: str = PAGE_CSP) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def console_router(settings: Settings, queue_app: Callable[[], Any]) -> APIRouter:
    """The console's routes for ``settings``; ``queue_app`` gives the Celery app (for Resume)."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    env = _environment()
    keys = list(settings.api_keys)

    def render(
        request: Request,
        template: str,
        status: int = 200,
        session: sessions.Session | None = None,
        **values: Any,
    ) -> HTMLResponse:
        page = env.get_template(template).render(
            prefix=PREFIX, session=session, request=request, **values
        )
        return HTMLResponse(page, status_code=status, headers=_headers())

    def error_page(
        request: Request, refused: RefusedError, session: sessions.Session | None
    ) -> Any:
        return render(
            request,
            "error.html",
            refused.status,
            session,
            title="RefusedError",
            message=refused.message,
        )

    def current(request: Request) -> sessions.Session | None:
        return sessions.read(request.cookies.get(sessions.SESSION_COOKIE), keys)

    def to_login(request: Request) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(
            f"{PREFIX}/login?next={urllib.parse.quote(target, safe='')}", status_code=303
        )

    def same_origin(request: Request) -> None:
        """Refuse a POST a browser marks as coming from another site (belt to CSRF's braces)."""
        origin = request.headers.get("origin")
        if origin is not None:
            # host and port only: behind a TLS proxy the browser says https, uvicorn sees http
            netloc = urllib.parse.urlsplit(origin).netloc
            if origin == "null" or netloc.lower() != request.headers.get("host", "").lower():
                raise RefusedError(403, f"cross-origin request refused (Origin {origin[:100]})")
        if request.headers.get("sec-fetch-site") == "cross-site":
            raise RefusedError(403, "cross-site request refused")

    async def form(request: Request) -> dict[str, str]:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise RefusedError(415, "the console accepts form posts only")
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise RefusedError(413, f"form over {MAX_FORM_BYTES} bytes")
        try:
            pairs = urllib.parse.parse_qsl(
                body.decode("utf-8"),
                keep_blank_values=True,
                max_num_fields=20,
                strict_parsing=False,
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise RefusedError(400, f"unreadable form: {exc}") from exc
        return dict(pairs)

    async def guarded_post(request: Request) -> tuple[sessions.Session, dict[str, str]]:
        """The session and form of a POST that passed origin, login and CSRF checks."""
        same_origin(request)
        session = current(request)
        if session is None:
            raise RefusedError(403, "not logged in: log in at /ui/login with an API key")
        fields = await form(request)
        if not sessions.csrf_ok(session, fields.get("csrf")):
            raise RefusedError(403, "missing or wrong CSRF token: reload the page and try again")
        return session, fields

    def reason_of(fields: dict[str, str]) -> str:
        reason = fields.get("reason", "").strip()
        if not reason:
            raise RefusedError(422, "a reason is required: say why, it goes into the alias log")
        if len(reason) > MAX_REASON:
            raise RefusedError(
                422, f"the reason has {len(reason)} characters; at most {MAX_REASON}"
            )
        if "\0" in reason:
            raise RefusedError(422, "the reason holds a NUL character")
        return reason

    def page(handler: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a GET handler: login required, RefusedError and lookup errors as error pages."""

        async def wrapped(request: Request) -> Any:
            session = current(request)
            if session is None:
                return to_login(request)
            try:
                return handler(request, session, **request.path_params)
            except RefusedError as refused:
                return error_page(request, refused, session)
            except (ModelNotFoundError, RunNotFoundError, JobNotFoundError) as exc:
                return error_page(request, RefusedError(404, str(exc)), session)
            except LoopmlError as exc:  # e.g. a version that is not a number: nothing to show
                return error_page(request, RefusedError(404, str(exc)), session)

        wrapped.__name__ = handler.__name__
        return wrapped

    def action(handler: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a POST handler: origin, login and CSRF checked before it runs."""

        async def wrapped(request: Request) -> Any:
            try:
                session, fields = await guarded_post(request)
            except RefusedError as refused:
                return error_page(request, refused, current(request))
            try:
                return handler(request, session, fields, **request.path_params)
            except RefusedError as refused:
                return error_page(request, refused, session)
            except ModelNotFoundError as exc:
                return error_page(request, RefusedError(404, str(exc)), session)
            except BrokerError as exc:
                return error_page(request, RefusedError(503, str(exc)), session)
            except LoopmlError as exc:
                return error_page(request, RefusedError(409, str(exc)), session)

        wrapped.__name__ = handler.__name__
        return wrapped

    @router.get("/static/console.css")
    def stylesheet() -> Response:  # public: the login page needs it, and it holds nothing
        css = (Path(__file__).parent / "static" / "console.css").read_bytes()
        return Response(css, media_type="text/css", headers=_headers())

    # -- login -------------------------------------------------------------------------------

    @router.get("/login")
    def login_form(request: Request) -> Any:
        token = sessions.new_login_token()
        response = render(
            request,
            "login.html",
            login_token=token,
            next=_safe_next(request.query_params.get("next")),
            disabled=not keys,
        )
        _cookie(request, response, sessions.LOGIN_COOKIE, token, 600)
        return response

    @router.post("/login")
    async def login(request: Request) -> Any:
        try:
            same_origin(request)
            fields = await form(request)
            if not sessions.login_token_ok(
                request.cookies.get(sessions.LOGIN_COOKIE), fields.get("csrf")
            ):
                raise RefusedError(403, "missing or wrong CSRF token: reload the login page")
        except RefusedError as refused:
            return error_page(request, refused, None)
        key = sessions.match_key(fields.get("key", ""), keys) if keys else None
        if key is None:
            return render(
                request,
                "login.html",
                401,
                login_token=request.cookies.get(sessions.LOGIN_COOKIE),
                next=_safe_next(fields.get("next")),
                error="unknown API key",
                disabled=not keys,
            )
        who = " ".join(fields.get("who", "").split())[: sessions.MAX_NAME] or "someone"
        opened = RedirectResponse(_safe_next(fields.get("next")), status_code=303)
        _cookie(request, opened, sessions.SESSION_COOKIE, sessions.issue(key, who))
        opened.delete_cookie(sessions.LOGIN_COOKIE, path=PREFIX)
        return opened

    @router.post("/logout")
    @action
    def logout(request: Request, session: sessions.Session, fields: dict[str, str]) -> Any:
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(sessions.SESSION_COOKIE, path=PREFIX)
        return response

    # -- models ------------------------------------------------------------------------------

    @router.get("")
    @router.get("/")
    @page
    def home(request: Request, session: sessions.Session) -> Any:
        return RedirectResponse(f"{PREFIX}/models", status_code=303)

    @router.get("/models")
    @page
    def models(request: Request, session: sessions.Session) -> Any:
        return render(
            request,
            "models.html",
            session=session,
            title="Models",
            models=data.models_overview(settings),
        )

    @router.get("/models/{name}")
    @page
    def model(request: Request, session: sessions.Session, name: str) -> Any:
        from loopml.lifecycle import history
        from loopml.registry.models import list_models, list_versions

        aliases = list_models(settings).get(name)
        if aliases is None:
            raise RefusedError(404, f"no registered model {name!r}")
        return render(
            request,
            "model.html",
            session=session,
            title=name,
            name=name,
            aliases=dict(sorted(aliases.items())),
            versions=list_versions(settings, name),
            moves=list(reversed(history(settings, name))),
            done=DONE.get(request.query_params.get("done") or ""),
        )

    @router.get("/models/{name}/versions/{version}")
    @page
    def version(request: Request, session: sessions.Session, name: str, version: str) -> Any:
        done = request.query_params.get("done")
        return render(
            request,
            "version.html",
            session=session,
            title=f"{name} v{version}",
            report=data.version_report(settings, name, version),
            done=DONE.get(done or ""),
        )

    @router.get("/models/{name}/versions/{version}/plots/{path:path}")
    async def plot(request: Request, name: str, version: str, path: str) -> Any:
        if current(request) is None:
            return Response("not logged in", status_code=403, headers=_headers())
        try:
            content, media_type = data.plot_bytes(settings, name, version, path)
        except LoopmlError as exc:
            return Response(str(exc), status_code=404, headers=_headers(), media_type="text/plain")
        return Response(content, media_type=media_type, headers=_headers())

    @router.post("/models/{name}/versions/{version}/{verb}")
    @action
    def decide(
        request: Request,
        session: sessions.Session,
        fields: dict[str, str],
        name: str,
        version: str,
        verb: str,
    ) -> Any:
        from loopml import lifecycle

        if verb not in ACTIONS:
            raise RefusedError(404, f"no action {verb!r}; one of {', '.join(ACTIONS)}")
        reason = reason_of(fields)
        if verb == "approve":
            lifecycle.approve(settings, name, version, reason=reason, actor=session.actor)
        elif verb == "reject":
            lifecycle.reject(settings, name, version, reason=reason, actor=session.actor)
        else:
            lifecycle.promote(settings, name, version, reason=reason, actor=session.actor)
        where = f"{PREFIX}/models/{urllib.parse.quote(name, safe='')}/versions/{version}"
        return RedirectResponse(f"{where}?done={verb}", status_code=303)

    @router.post("/models/{name}/rollback")
    @action
    def rollback(
        request: Request, session: sessions.Session, fields: dict[str, str], name: str
    ) -> Any:
        from loopml import lifecycle

        reason = reason_of(fields)
        lifecycle.rollback(settings, name, reason=reason, actor=session.actor)
        return RedirectResponse(
            f"{PREFIX}/models/{urllib.parse.quote(name, safe='')}?done=rollback", status_code=303
        )

    # -- runs, jobs, monitoring --------------------------------------------------------------

    @router.get("/runs")
    @page
    def runs(request: Request, session: sessions.Session) -> Any:
        from loopml.store.runs import RunStore

        store = RunStore(settings.database)
        try:
            found = store.list_runs(limit=50)
        finally:
            store.close()
        return render(request, "runs.html", session=session, title="Runs", runs=found)

    @router.get("/runs/{run_id}")
    @page
    def run(request: Request, session: sessions.Session, run_id: str) -> Any:
        from loopml.store.runs import RunStore

        store = RunStore(settings.database)
        try:
            found = store.get_run(run_id)
        finally:
            store.close()
        return render(
            request,
            "run.html",
            session=session,
            title=f"Run {found.id[:12]}",
            run=found,
            provenance=data.run_provenance(found),
            done=DONE.get(request.query_params.get("done") or ""),
        )

    @router.post("/runs/{run_id}/resume")
    @action
    def resume(
        request: Request, session: sessions.Session, fields: dict[str, str], run_id: str
    ) -> Any:
        from loopml.queue.submit import resume_run_on_queue
        from loopml.store.runs import RunStore

        store = RunStore(settings.database)
        try:
            found = store.find_run(run_id)
        finally:
            store.close()
        if found is None:
            raise RefusedError(404, f"no run {run_id!r}")
        resume_run_on_queue(queue_app(), settings, found, actor=session.actor)
        return RedirectResponse(f"{PREFIX}/runs/{found.id}?done=resume", status_code=303)

    @router.get("/jobs")
    @page
    def jobs(request: Request, session: sessions.Session) -> Any:
        from loopml.store.jobs import JobStore

        store = JobStore(settings.database)
        try:
            found = store.list(limit=50)
        finally:
            store.close()
        return render(request, "jobs.html", session=session, title="Jobs", jobs=found)

    @router.get("/monitoring")
    @page
    def monitoring(request: Request, session: sessions.Session) -> Any:
        return render(
            request,
            "monitoring.html",
            session=session,
            title="Monitoring",
            models=data.monitoring_overview(settings),
        )

    @router.get("/monitoring/{name}/report")
    @page
    def monitoring_report(request: Request, session: sessions.Session, name: str) -> Any:
        from loopml.monitoring.report import render_report

        checks = data.monitoring_checks(settings, name)
        if not checks:
            raise RefusedError(404, f"no monitoring windows for model {name!r}")
        return HTMLResponse(render_report(name, checks), headers=_headers(REPORT_CSP))

    return router


def _safe_next(target: str | None) -> str:
    """Where to go after login: a console path only (no open redirect to another site)."""
    if (
        target
        and target.startswith(PREFIX + "/")
        and not any(bad in target for bad in ("\\", "\n", "\r"))
    ):
        return target
    return f"{PREFIX}/models"


def _cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None = None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age if max_age is not None else sessions.MAX_AGE_S,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
