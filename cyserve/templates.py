"""Jinja2 templates, rendered asynchronously (``pip install 'cyserve[templates]'``).

``templates = app.templates("templates")`` (or ``Templates("templates")``), then in a handler
``return await templates.render("page.html", user=user)``.  Autoescaping is on for every
template (Areion left it off); pass ``autoescape=`` to choose otherwise.  ``templates.env`` is the
``jinja2.Environment`` (``enable_async=True``) for filters, globals and tests.
"""
from __future__ import annotations

from typing import Any, Iterable

from cyserve.response import HTMLResponse

__all__ = ["Templates"]


def _jinja2() -> Any:
    try:
        import jinja2
    except ImportError:
        raise ImportError("cyserve templates need Jinja2: pip install 'cyserve[templates]' "
                          "(or pip install jinja2)") from None
    return jinja2


class Templates:
    """A directory of Jinja2 templates (a list of directories is searched in order)."""

    def __init__(self, directory: str | Iterable[str], **env_options: Any) -> None:
        jinja2 = _jinja2()
        env_options.setdefault("autoescape", True)
        env_options.setdefault("loader", jinja2.FileSystemLoader(directory))
        self.env = jinja2.Environment(enable_async=True, **env_options)

    async def render_text(self, name: str, context: dict[str, Any] | None = None, /, **kw: Any) -> str:
        """The rendered template as a string."""
        text: str = await self.env.get_template(name).render_async({**(context or {}), **kw})
        return text

    async def render(self, name: str, context: dict[str, Any] | None = None, /, *, status: int = 200,
                     headers: Any = None, **kw: Any) -> HTMLResponse:
        """The rendered template as an HTML response (``status`` and ``headers`` for it; pass
        variables named like those in ``context``)."""
        return HTMLResponse(await self.render_text(name, context, **kw), status, headers)
