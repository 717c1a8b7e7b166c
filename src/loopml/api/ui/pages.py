"""The console's routes: pages (GET) and decisions (POST), each behind the login.

A GET without a valid session is sent to the login form; a POST without one,
without this session's CSRF token, or from another origin is answered 403 and
changes nothing. Every decision takes a reason (required, at most
``MAX_REASON`` characters, no control character; a refused one re-shows the
form) and goes through ``loopml.lifecycle``. Path parameters are checked before
anything is looked up: a version is a whole number written as the registry
writes it, no parameter holds a control character; anything else is a 404.
Handlers run in the thread pool: they call MLflow and the database, and must
not stall the event loop that serves everyone else.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from loopml.api.ui import data
from loopml.api.ui import session as sessions
from loopml.core.access import mask_secrets
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
LABELS = {
    "approve": "Approve",
    "reject": "Reject",
    "promote": "Promote to champion",
    "rollback": "Roll back",
}
VERSION = re.compile(r"[1-9][0-9]{0,17}")
"""A registered version as MLflow numbers them: ``01``, `` 1`` or ``1e0`` would reach version 1
through MLflow's ``int()`` yet differ from ``"1"`` everywhere loopml compares versions."""
MAX_PARAM = 512
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

    def __init__(self, status: int, message: str, retry: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry = retry
        """The decision form to show again (``url``, ``verb``, ``label``, ``reason``), if any."""


def _unavailable(exc: BaseException) -> RefusedError | None:
    """A 503 for a registry or database that cannot be reached or read (else None).

    MLflow's and SQLAlchemy's errors carry the store's address; the message is
    masked when shown (``error_page``), and only its first line is kept.
    """
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    for cause in (exc, exc.__cause__):
        if isinstance(cause, MlflowException | SQLAlchemyError | OSError):
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            return RefusedError(
                503, f"the registry or the metadata store cannot be read now; try again ({first})"
            )
    return None


def _check_params(params: dict[str, Any]) -> None:
    """Refuse (404) path parameters nothing can be stored under, before any lookup."""
    for name, value in params.items():
        text = str(value)
        if len(text) > MAX_PARAM or sessions.control_character(text) is not None:
            raise RefusedError(404, f"no such {name}: {text[:80]!r}")
    version = params.get("version")
    if version is not None and not VERSION.fullmatch(str(version)):
        raise RefusedError(
            404, f"no version {str(version)[:40]!r}: versions are whole numbers such as 3"
        )


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
    revoked = sessions.Revocations()

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
            title="Refused",
            message=mask_secrets(refused.message),  # a store's address may hold a password
            retry=refused.retry,
        )

    def current(request: Request) -> sessions.Session | None:
        return sessions.read(request.cookies.get(sessions.SESSION_COOKIE), keys, revoked=revoked)

    def to_login(request: Request) -> RedirectResponse:
        path = urllib.parse.quote(request.url.path, safe="/")  # decoded: a name may hold " "
        target = path + (f"?{request.url.query}" if request.url.query else "")
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

    def reason_of(fields: dict[str, str], url: str, verb: str) -> str:
        """The form's reason; a missing or unusable one re-shows the form (422)."""
        reason = fields.get("reason", "").strip()
        retry = {"url": url, "verb": verb, "label": LABELS[verb], "reason": reason[:MAX_REASON]}
        if not reason:
            raise RefusedError(
                422, "a reason is required: say why, it goes into the alias log", retry
            )
        if len(reason) > MAX_REASON:
            raise RefusedError(
                422, f"the reason has {len(reason)} characters; at most {MAX_REASON}", retry
            )
        bad = sessions.control_character(reason)
        if bad is not None:
            retry["reason"] = ""
            raise RefusedError(
                422, f"the reason holds a control character ({bad}); type plain text", retry
            )
        return reason

    def page(handler: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a GET handler: login required, RefusedError and lookup errors as error pages."""

        async def wrapped(request: Request) -> Any:
            session = current(request)
            if session is None:
                return to_login(request)
            try:
                _check_params(request.path_params)
                return await run_in_threadpool(handler, request, session, **request.path_params)
            except RefusedError as refused:
                return error_page(request, refused, session)
            except (ModelNotFoundError, RunNotFoundError, JobNotFoundError) as exc:
                return error_page(request, RefusedError(404, str(exc)), session)
            except Exception as exc:
                down = _unavailable(exc)
                if down is not None:
                    return error_page(request, down, session)
                if isinstance(exc, LoopmlError):  # nothing to show for what was asked
                    return error_page(request, RefusedError(404, str(exc)), session)
                raise

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
                _check_params(request.path_params)
                return await run_in_threadpool(
                    handler, request, session, fields, **request.path_params
                )
            except RefusedError as refused:
                return error_page(request, refused, session)
            except ModelNotFoundError as exc:
                return error_page(request, RefusedError(404, str(exc)), session)
            except BrokerError as exc:
                return error_page(request, RefusedError(503, str(exc)), session)
            except Exception as exc:
                down = _unavailable(exc)
                if down is not None:
                    return error_page(request, down, session)
                if isinstance(exc, LoopmlError):  # e.g. a version no longer waiting
                    return error_page(request, RefusedError(409, str(exc)), session)
                raise

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
        bad = sessions.control_character(who)
        if bad is not None:
            return render(
                request,
                "login.html",
                422,
                login_token=request.cookies.get(sessions.LOGIN_COOKIE),
                next=_safe_next(fields.get("next")),
                error=f"your name holds a control character ({bad}); type plain text",
                disabled=not keys,
            )
        opened = RedirectResponse(_safe_next(fields.get("next")), status_code=303)
        _cookie(request, opened, sessions.SESSION_COOKIE, sessions.issue(key, who))
        opened.delete_cookie(sessions.LOGIN_COOKIE, path=PREFIX)
        return opened

    @router.post("/logout")
    @action
    def logout(request: Request, session: sessions.Session, fields: dict[str, str]) -> Any:
        revoked.revoke(session)  # a copy of the cookie opens nothing either
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
            _check_params(request.path_params)
            content, media_type = await run_in_threadpool(
                data.plot_bytes, settings, name, version, path
            )
        except RefusedError as refused:
            return Response(
                refused.message, status_code=404, headers=_headers(), media_type="text/plain"
            )
        except Exception as exc:
            answer = _unavailable(exc) or (
                RefusedError(404, str(exc)) if isinstance(exc, LoopmlError) else None
            )
            if answer is None:
                raise
            text = mask_secrets(answer.message) or ""
            return Response(
                text, status_code=answer.status, headers=_headers(), media_type="text/plain"
            )
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
        where = f"{PREFIX}/models/{urllib.parse.quote(name, safe='')}/versions/{version}"
        reason = reason_of(fields, f"{where}/{verb}", verb)
        if verb == "approve":
            lifecycle.approve(settings, name, version, reason=reason, actor=session.actor)
        elif verb == "reject":
            lifecycle.reject(settings, name, version, reason=reason, actor=session.actor)
        else:
            lifecycle.promote(settings, name, version, reason=reason, actor=session.actor)
        return RedirectResponse(f"{where}?done={verb}", status_code=303)

    @router.post("/models/{name}/rollback")
    @action
    def rollback(
        request: Request, session: sessions.Session, fields: dict[str, str], name: str
    ) -> Any:
        from loopml import lifecycle

        where = f"{PREFIX}/models/{urllib.parse.quote(name, safe='')}"
        reason = reason_of(fields, f"{where}/rollback", "rollback")
        lifecycle.rollback(settings, name, reason=reason, actor=session.actor)
        return RedirectResponse(f"{where}?done=rollback", status_code=303)

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
    """Where to go after login: a console path only (no open redirect to another site).

    No whitespace or control character (a browser drops tabs and newlines from
    a URL), no ``\\`` (read as ``/``), no empty or dot segment
    (``/ui/..//evil.example`` resolves to ``//evil.example``), and it must still
    be under ``/ui/`` once percent-decoded.
    """
    fallback = f"{PREFIX}/models"
    if not target or not target.startswith(PREFIX + "/") or len(target) > 2000:
        return fallback
    if sessions.control_character(target) or any(char.isspace() for char in target):
        return fallback
    if "\\" in target:
        return fallback
    path = urllib.parse.unquote(urllib.parse.urlsplit(target).path)
    segments = path.split("/")[1:]
    if any(seg in ("", ".", "..") for seg in segments[:-1]) or segments[-1] in (".", ".."):
        return fallback
    if "\\" in path or not path.startswith(PREFIX + "/"):
        return fallback
    return target


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
