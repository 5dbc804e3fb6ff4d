"""The gateway's one error tree.

Every failure that reaches a client is a :class:`GatewayError` carrying an
HTTP status, an OpenAI-style ``type`` and ``code``, and the offending
``param`` when there is one. API families render it in their own format
(see ``service.api.errors``); providers translate backend failures into it at
one boundary, chaining the original with ``from``::

    GatewayError
    ├── InvalidRequest          400 invalid_request_error
    │   ├── UnsupportedFeature  400 (e.g. images to a text-only model)
    │   └── ContextLengthExceeded 400 context_length_exceeded (OpenAI's wording)
    ├── AuthenticationFailed    401
    ├── PermissionDenied        403
    ├── NotFound                404 (ModelNotFound: code model_not_found)
    ├── MethodNotAllowed        405
    ├── PayloadTooLarge         413
    ├── RateLimited             429
    ├── InternalError           500
    ├── NotSupported            501 (e.g. embeddings on a backend without them)
    ├── UpstreamError           502 (upstream answered badly; message kept)
    ├── ServiceUnavailable      503 (ModelBusy, ModelNotLoaded, UpstreamUnavailable)
    └── UpstreamTimeout         504
"""

from __future__ import annotations

from typing import Optional


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: Optional[str] = None
    #: The upstream's HTTP status when this error translates one (e.g. 401 -> refresh a token).
    upstream_status: Optional[int] = None

    def __init__(self, message: str, *, param: Optional[str] = None,
                 code: Optional[str] = None, status: Optional[int] = None,
                 retry_after: Optional[float] = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.retry_after = retry_after


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class UnsupportedFeature(InvalidRequest):
    code = "unsupported_feature"


class ContextLengthExceeded(InvalidRequest):
    """The prompt does not fit the model's context, worded exactly as OpenAI words it: clients
    (Roo Code among them) recognise this text and code, then shorten their history and retry."""

    code = "context_length_exceeded"

    def __init__(self, context: int, prompt_tokens: int, *, param: str = "messages"):
        what = "messages" if param == "messages" else "prompt"
        super().__init__(
            f"This model's maximum context length is {context} tokens. However, your {what} "
            f"resulted in {prompt_tokens} tokens. Please reduce the length of the {what}.",
            param=param)
        self.context = context
        self.prompt_tokens = prompt_tokens


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class InternalError(GatewayError):
    status = 500
    type = "server_error"
    code = "internal_error"


class NotSupported(GatewayError):
    status = 501
    type = "invalid_request_error"
    code = "not_supported"


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class ServiceUnavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class ModelBusy(ServiceUnavailable):
    code = "model_busy"


class ModelNotLoaded(ServiceUnavailable):
    code = "model_not_loaded"


class UpstreamUnavailable(ServiceUnavailable):
    code = "upstream_unavailable"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"
