"""API families (wire formats) as Flask blueprints."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from . import health
    from .helios import routes as helios
    from .openai.routes import bp as openai_bp

    app.register_blueprint(health.bp)
    app.register_blueprint(openai_bp)
    helios.init_app(app)
