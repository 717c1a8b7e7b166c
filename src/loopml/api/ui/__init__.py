"""The review console: server-rendered pages under ``/ui`` of ``loopml api`` (docs/console.md).

Models, versions and their training reports, the alias history, runs, jobs
and monitoring windows; Approve, Reject, Promote and Rollback go through
``loopml.lifecycle``, the functions the CLI uses, so every decision lands in
the alias log with who and why. Login with an API key, CSRF token on every
POST (``loopml.api.ui.session``).
"""

from loopml.api.ui.pages import console_router

__all__ = ["console_router"]
