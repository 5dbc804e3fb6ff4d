"""``/console/``: the web console, static files served by the gateway itself.

No build step and no CDN: HTML, CSS and JavaScript ship in ``static/``. The page
is a client of the ``/admin`` API; the admin key it signs in with lives in the
tab's ``sessionStorage`` and travels only in ``Authorization`` headers. A strict
Content-Security-Policy allows scripts, styles and requests to this origin only.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, redirect, send_from_directory

STATIC = Path(__file__).with_name("static")
bp = Blueprint("console", __name__, url_prefix="/console")

_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; connect-src 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@bp.get("/")
def index() -> Response:
    return send_from_directory(STATIC, "index.html")


@bp.get("/<path:name>")
def asset(name: str) -> Response:
    return send_from_directory(STATIC, name)  # 404 for anything outside static/


@bp.after_request
def _secure(response: Response) -> Response:
    response.headers.update(_HEADERS)
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.add_url_rule("/console", "console_root", lambda: redirect("/console/", 308))
