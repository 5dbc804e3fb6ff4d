"""API families (wire formats) as Flask blueprints."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from . import admin, health, ops
    from .anthropic.routes import bp as anthropic_bp
    from .helios import routes as helios
    from .llamacpp.routes import bp as llamacpp_bp
    from .lmstudio.routes import bp as lmstudio_bp
    from .ollama.routes import bp as ollama_bp
    from .openai.routes import bp as openai_bp
    from .responses.routes import bp as responses_bp

    app.register_blueprint(health.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(openai_bp)
    app.register_blueprint(responses_bp)
    app.register_blueprint(anthropic_bp)
    app.register_blueprint(ollama_bp)
    app.register_blueprint(admin.bp)
    helios.init_app(app)
    app.register_blueprint(llamacpp_bp)
    app.register_blueprint(lmstudio_bp)
