"""Sphinx extension: a visible "Open in Colab" badge under the title of every page built from a notebook.

The toolbar's launch menu (sphinx-book-theme) is easy to miss; this badge sits at the top of the
text. It needs no change to the notebooks: on each page whose source is an ``.ipynb`` file, the
``html-page-context`` handler inserts one link after the page's first ``</h1>``. The link is the
one the theme's own Colab button uses, built from ``_config.yml``:

    {launch_buttons.colab_url}/github/{org}/{repo}/blob/{repository.branch}/{path_to_book}{page}.ipynb

The badge is self-contained (the theme's Colab logo from ``_static`` and inline style), so it
renders offline. Enabled in ``_config.yml`` by ``sphinx.local_extensions: {colab_badge: book/_ext}``;
``tools/check_site.py`` checks that every chapter page shows it.
"""

from __future__ import annotations

import html
import pathlib
import re
from typing import Any, Optional

from sphinx.util import logging

__all__ = ["BADGE_CLASS", "colab_url", "badge_html", "insert_badge", "setup"]

LOGGER = logging.getLogger(__name__)

#: The CSS class of the badge's paragraph; ``tools/check_site.py`` looks for it.
BADGE_CLASS = "colab-badge"

_STYLE = (
    "display:inline-flex;align-items:center;gap:0.4em;padding:0.15em 0.7em;border:1px solid #f9ab00;"
    "border-radius:4px;background:#fff8e1;color:#202124;font-size:0.9em;text-decoration:none"
)


def colab_url(theme_options: dict[str, Any], docname: str, suffix: str = ".ipynb") -> Optional[str]:
    """The Colab link of page ``docname`` from the theme options Jupyter Book derives from ``_config.yml``
    (``repository_url``, ``repository_branch``, ``path_to_docs``, ``launch_buttons.colab_url``);
    ``None`` when Colab or a GitHub repository is not configured."""
    colab = (theme_options.get("launch_buttons") or {}).get("colab_url", "").strip("/")
    repo = (theme_options.get("repository_url") or "").strip("/")
    m = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?", repo)
    if not colab or not m:
        return None
    branch = theme_options.get("repository_branch") or "main"
    docs = (theme_options.get("path_to_docs") or "").strip("/")
    path = f"{docs}/{docname}{suffix}" if docs else f"{docname}{suffix}"
    return f"{colab}/github/{m.group(1)}/{m.group(2)}/blob/{branch}/{path}"


def badge_html(url: str, logo_src: str) -> str:
    """The badge: a paragraph of class :data:`BADGE_CLASS` holding one link to ``url``."""
    return (
        f'<p class="{BADGE_CLASS}"><a class="reference external" href="{html.escape(url)}" '
        f'style="{_STYLE}" title="Run this chapter on Google Colab">'
        f'<img src="{html.escape(logo_src)}" alt="" style="height:1.1em;margin:0">'
        f"<span>Open in Colab</span></a></p>"
    )


def insert_badge(body: str, badge: str) -> str:
    """``body`` with ``badge`` after its first ``</h1>`` (at the top if the page has no title); idempotent."""
    if f'class="{BADGE_CLASS}"' in body:
        return body
    i = body.find("</h1>")
    if i < 0:
        return badge + body
    i += len("</h1>")
    return body[:i] + "\n" + badge + body[i:]


def _on_page_context(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    if doctree is None or "body" not in context:
        return
    try:
        source = pathlib.Path(app.env.doc2path(pagename))
    except Exception:  # pages without a source document (genindex, search)
        return
    if source.suffix != ".ipynb":
        return
    url = colab_url(app.config.html_theme_options or {}, pagename)
    if url is None:
        LOGGER.warning(
            "colab_badge: no Colab link for %s (set repository.url to a GitHub repository and "
            "launch_buttons.colab_url in _config.yml)",
            pagename,
            type="colab_badge",
        )
        return
    logo = context["pathto"]("_static/images/logo_colab.png", 1)
    context["body"] = insert_badge(context["body"], badge_html(url, logo))


def setup(app):
    # after sphinx-book-theme's own html-page-context handlers (default priority 500)
    app.connect("html-page-context", _on_page_context, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
